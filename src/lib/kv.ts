export interface KvStats {
  reads: number;
  writes: number;
}

export const newKvStats = (): KvStats => ({ reads: 0, writes: 0 });

/** Counts KV operations for `Server-Timing`; everything else passes through. */
export function countedKv(inner: KVNamespace, stats: KvStats): KVNamespace {
  return {
    get: ((key: string, opts?: unknown) => {
      stats.reads += 1;
      return (inner.get as (k: string, o?: unknown) => Promise<unknown>)(key, opts);
    }) as KVNamespace["get"],
    getWithMetadata: ((key: string, opts?: unknown) => {
      stats.reads += 1;
      return (inner.getWithMetadata as (k: string, o?: unknown) => Promise<unknown>)(key, opts);
    }) as KVNamespace["getWithMetadata"],
    put: (key, value, opts) => {
      stats.writes += 1;
      return inner.put(key, value, opts);
    },
    delete: (key) => {
      stats.writes += 1;
      return inner.delete(key);
    },
    list: ((opts?: KVNamespaceListOptions) => {
      stats.reads += 1;
      return inner.list(opts);
    }) as KVNamespace["list"],
  };
}
