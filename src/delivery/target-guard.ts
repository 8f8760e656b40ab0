import { BlockList, isIP, isIPv4, isIPv6 } from "node:net";

/**
 * README "Configuration" (private-target guard): which delivery targets are allowed. Pure rules, no I/O: send.ts resolves the host and
 * asks these rules about every address before it connects to one of them (SSRF guard).
 */
export interface TargetPolicy {
  /** WEBHOOKS_ALLOW_PRIVATE_TARGETS: loopback, private, link-local, CGNAT, multicast, metadata… */
  allowPrivateTargets: boolean;
  /** WEBHOOKS_ALLOW_HTTP: plain http:// to public addresses. */
  allowHttp: boolean;
}

export type Verdict = { allowed: true } | { allowed: false; reason: string };

const ALLOWED: Verdict = { allowed: true };
const refuse = (reason: string): { allowed: false; reason: string } => ({ allowed: false, reason });
const PRIVATE_FLAG = "(WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)";
const HTTP_FLAG = "(WEBHOOKS_ALLOW_HTTP=false)";

/** A target URL checked on its own, split into what the HTTP client needs when it is allowed. */
export type CheckedTarget = { allowed: true; origin: string; path: string } | { allowed: false; reason: string };

/**
 * The URL alone: scheme, credentials, and an IP-literal host. WHATWG URL parsing normalises every
 * IPv4 spelling (2130706433, 0x7f.1, 0177.0.0.1, 127.1 → 127.0.0.1) and strips `user@`, so the
 * host checked is the host connected to. A host name is checked once resolved (checkResolved).
 */
export function checkTarget(url: string, policy: TargetPolicy): CheckedTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return refuse("the target is not a valid URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return refuse(`only http:// and https:// targets are delivered to, not ${parsed.protocol}//`);
  }
  if (parsed.username || parsed.password) return refuse("the target URL contains credentials");
  if (parsed.protocol === "http:" && !policy.allowHttp && !policy.allowPrivateTargets) {
    return refuse(`plain http:// target; only https:// is delivered to ${HTTP_FLAG}`);
  }
  const host = unbracket(parsed.hostname);
  const verdict = isIP(host) ? checkResolved(host, parsed.protocol, [host], policy) : ALLOWED;
  return verdict.allowed ? { allowed: true, origin: parsed.origin, path: parsed.pathname + parsed.search } : verdict;
}

/** checkTarget's verdict alone. */
export function checkUrl(url: string, policy: TargetPolicy): Verdict {
  const target = checkTarget(url, policy);
  return target.allowed ? ALLOWED : target;
}

/**
 * Every address `host` resolved to (or the literal itself). Refused if ANY address is refused:
 * the connection may go to any of them.
 */
export function checkResolved(host: string, protocol: string, addresses: readonly string[], policy: TargetPolicy): Verdict {
  if (addresses.length === 0) return refuse(`${host} resolved to no address`);
  for (const address of addresses) {
    const finding = classifyAddress(address);
    const subject = sameAddress(host, address) ? `${address} is` : `${host} resolves to ${address},`;
    if (finding && !policy.allowPrivateTargets) return refuse(`${subject} ${finding} ${PRIVATE_FLAG}`);
    // README "Configuration": plain http is allowed to private targets when those are allowed, to public ones only with the flag.
    if (!finding && protocol === "http:" && !policy.allowHttp) {
      return refuse(`plain http:// to ${address}, a public address; only https:// is delivered to ${HTTP_FLAG}`);
    }
  }
  return ALLOWED;
}

/**
 * What makes an address non-public, as a phrase ("a loopback address"), or null for a public
 * address. IPv6 forms that embed an IPv4 address are judged by the embedded address.
 */
export function classifyAddress(address: string): string | null {
  const plain = unbracket(address).split("%")[0]!;
  if (isIPv4(plain)) return match(plain, "ipv4");
  if (!isIPv6(plain)) return "not an IP address";
  const groups = ipv6Groups(plain);
  if (groups.every((group) => group === 0)) return "an unspecified address";
  if (groups.slice(0, 7).every((group) => group === 0) && groups[7] === 1) return "a loopback address";
  const embedded = embeddedIPv4(groups);
  if (embedded) {
    const inner = match(embedded.ipv4, "ipv4");
    if (inner) return `${embedded.form} form of ${embedded.ipv4}, ${inner}`;
  }
  return match(plain, "ipv6");
}

/** Most specific first: the first category whose ranges hold the address names it. */
const CATEGORIES: ReadonlyArray<[label: string, ranges: string[]]> = [
  ["a cloud metadata address", ["169.254.169.254/32", "100.100.100.200/32", "fd00:ec2::254/128"]],
  ["an unspecified address", ["0.0.0.0/8", "::/128"]],
  ["a loopback address", ["127.0.0.0/8", "::1/128"]],
  ["a private address", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10"]],
  ["a link-local address", ["169.254.0.0/16", "fe80::/10"]],
  ["a carrier-grade NAT (shared) address", ["100.64.0.0/10"]],
  ["a multicast address", ["224.0.0.0/4", "ff00::/8"]],
  ["the broadcast address", ["255.255.255.255/32"]],
  ["a documentation address", ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"]],
  ["a benchmarking address", ["198.18.0.0/15", "2001:2::/48"]],
  [
    "a reserved address",
    // 192.0.0/24 IETF assignments, 192.88.99/24 6to4 relays, 240/4 future use; 100::/64 discard,
    // 2001::/23 IETF assignments (Teredo, ORCHID…), 64:ff9b:1::/48 local-use NAT64.
    ["192.0.0.0/24", "192.88.99.0/24", "240.0.0.0/4", "100::/64", "2001::/23", "64:ff9b:1::/48"],
  ],
];

const LISTS: ReadonlyArray<[label: string, list: BlockList]> = CATEGORIES.map(([label, ranges]) => {
  const list = new BlockList();
  for (const range of ranges) {
    const [network, prefix] = range.split("/") as [string, string];
    list.addSubnet(network, Number(prefix), isIPv4(network) ? "ipv4" : "ipv6");
  }
  return [label, list];
});

function match(address: string, family: "ipv4" | "ipv6"): string | null {
  for (const [label, list] of LISTS) if (list.check(address, family)) return label;
  return null;
}

/** IPv6 forms that carry an IPv4 address the packet may end up at. */
function embeddedIPv4(g: number[]): { form: string; ipv4: string } | null {
  const zero = (from: number, to: number) => g.slice(from, to).every((group) => group === 0);
  const last = () => ipv4From(g[6]!, g[7]!);
  if (zero(0, 5) && g[5] === 0xffff) return { form: "an IPv4-mapped", ipv4: last() };
  if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) return { form: "an IPv4-translated", ipv4: last() };
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return { form: "a NAT64", ipv4: last() };
  if (zero(0, 6)) return { form: "an IPv4-compatible", ipv4: last() };
  if (g[0] === 0x2002) return { form: "a 6to4", ipv4: ipv4From(g[1]!, g[2]!) };
  // Teredo: the client's address is stored inverted in the last 32 bits.
  if (g[0] === 0x2001 && g[1] === 0) return { form: "a Teredo", ipv4: ipv4From(~g[6]! & 0xffff, ~g[7]! & 0xffff) };
  return null;
}

function ipv4From(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
}

/** Eight 16-bit groups of a valid IPv6 address (a trailing dotted quad becomes two groups). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  if (text.includes(".")) {
    const colon = text.lastIndexOf(":");
    const [a, b, c, d] = text.slice(colon + 1).split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, colon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(":").map((group) => parseInt(group, 16)) : []);
  const before = parse(head);
  const after = parse(tail);
  const fill = tail === undefined ? [] : new Array<number>(8 - before.length - after.length).fill(0);
  return [...before, ...fill, ...after];
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function sameAddress(host: string, address: string): boolean {
  return unbracket(host).toLowerCase() === address.toLowerCase();
}
