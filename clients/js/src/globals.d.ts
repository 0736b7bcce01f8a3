// The few host functions the client uses. Declared here instead of pulling in
// lib.dom or @types/node, so the published declarations depend on neither.
declare function setTimeout(fn: () => void, ms?: number): any;
declare function clearTimeout(t: any): void;
declare function setInterval(fn: () => void, ms?: number): any;
declare function clearInterval(t: any): void;
// The WeChat mini-program API object: a free variable there, not a global property.
declare const wx: any;
declare const process: any;
