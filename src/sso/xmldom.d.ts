/**
 * The slice of @xmldom/xmldom the SAML verifier uses, imported from its parser module directly:
 * the package's own typings pull the DOM library into every file of the project (`/// <reference
 * lib="dom" />`), which clashes with the Workers types.
 */
declare module "@xmldom/xmldom/lib/dom-parser" {
  export interface XmlNodeList {
    readonly length: number;
    [index: number]: XmlNode;
  }
  export interface XmlNode {
    readonly nodeType: number;
    readonly nodeName: string;
    readonly parentNode: XmlNode | null;
    /** null on text, comment and other leaf nodes. */
    readonly childNodes: XmlNodeList | null;
    readonly ownerDocument: XmlDocument;
    readonly data?: string;
    readonly textContent: string | null;
    cloneNode(deep: boolean): XmlNode;
    removeChild(child: XmlNode): XmlNode;
  }
  export interface XmlAttr {
    readonly name: string;
    readonly localName: string;
    readonly prefix: string | null;
    readonly namespaceURI: string | null;
    readonly value: string;
  }
  export interface XmlElement extends XmlNode {
    readonly localName: string;
    readonly namespaceURI: string | null;
    readonly prefix: string | null;
    readonly tagName: string;
    readonly childNodes: XmlNodeList;
    readonly attributes: { readonly length: number; [index: number]: XmlAttr };
    getAttributeNode(name: string): XmlAttr | null;
  }
  export interface XmlDocument extends XmlNode {
    readonly documentElement: XmlElement | null;
    readonly doctype: XmlNode | null;
  }
  export interface ErrorHandler {
    warning?: (message: string) => void;
    error?: (message: string) => void;
    fatalError?: (message: string) => void;
  }
  export class DOMParser {
    constructor(options?: { errorHandler?: ErrorHandler; locator?: object });
    parseFromString(source: string, mimeType: string): XmlDocument;
  }
}
