/** RFC 3339 UTC string for a stored millisecond timestamp. */
export const iso = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : iso(ms));
export const DAY_MS = 86_400_000;
