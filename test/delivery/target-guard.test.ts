import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkResolved, checkUrl, classifyAddress, type TargetPolicy } from "../../src/delivery/target-guard.js";

const strict: TargetPolicy = { allowPrivateTargets: false, allowHttp: false };
const httpOnly: TargetPolicy = { allowPrivateTargets: false, allowHttp: true };
const privateOnly: TargetPolicy = { allowPrivateTargets: true, allowHttp: false };
const open: TargetPolicy = { allowPrivateTargets: true, allowHttp: true };

const reasonOf = (verdict: ReturnType<typeof checkUrl>) => (verdict.allowed ? null : verdict.reason);

describe("classifyAddress", () => {
  const refused: Array<[address: string, phrase: RegExp]> = [
    ["127.0.0.1", /loopback/],
    ["127.255.255.254", /loopback/],
    ["::1", /loopback/],
    ["10.0.0.1", /private/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["fc00::1", /private/],
    ["fd12:3456::1", /private/],
    ["fec0::1", /private/],
    ["169.254.1.1", /link-local/],
    ["fe80::1", /link-local/],
    ["fe80::1%eth0", /link-local/],
    ["febf::1", /link-local/],
    ["100.64.0.1", /carrier-grade NAT/],
    ["100.127.255.255", /carrier-grade NAT/],
    ["0.0.0.0", /unspecified/],
    ["0.1.2.3", /unspecified/],
    ["::", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["239.255.255.250", /multicast/],
    ["ff02::1", /multicast/],
    ["255.255.255.255", /broadcast/],
    ["192.0.0.8", /reserved/],
    ["240.0.0.1", /reserved/],
    ["192.88.99.1", /reserved/],
    ["100::1", /reserved/],
    ["64:ff9b:1::a00:1", /reserved/],
    ["2001:10::1", /reserved/],
    ["192.0.2.1", /documentation/],
    ["198.51.100.7", /documentation/],
    ["203.0.113.9", /documentation/],
    ["2001:db8::1", /documentation/],
    ["198.18.0.1", /benchmarking/],
    ["198.19.255.255", /benchmarking/],
    ["2001:2::1", /benchmarking/],
    ["169.254.169.254", /cloud metadata/],
    ["100.100.100.200", /cloud metadata/],
    ["fd00:ec2::254", /cloud metadata/],
    // IPv6 forms carrying an IPv4 address are judged by it.
    ["::ffff:127.0.0.1", /IPv4-mapped form of 127\.0\.0\.1, a loopback/],
    ["::ffff:7f00:1", /IPv4-mapped form of 127\.0\.0\.1, a loopback/],
    ["::ffff:169.254.169.254", /IPv4-mapped form of 169\.254\.169\.254, a cloud metadata/],
    ["::ffff:0:10.0.0.1", /IPv4-translated form of 10\.0\.0\.1, a private/],
    ["64:ff9b::192.168.0.1", /NAT64 form of 192\.168\.0\.1, a private/],
    ["64:ff9b::7f00:1", /NAT64 form of 127\.0\.0\.1, a loopback/],
    ["::127.0.0.1", /IPv4-compatible form of 127\.0\.0\.1, a loopback/],
    ["::a9fe:a9fe", /IPv4-compatible form of 169\.254\.169\.254/],
    ["2002:7f00:1::1", /6to4 form of 127\.0\.0\.1, a loopback/],
    ["2002:a00:1::", /6to4 form of 10\.0\.0\.1, a private/],
    // Teredo stores the client address inverted: ~127.0.0.1 = 80ff:fffe.
    ["2001:0:4136:e378:8000:63bf:80ff:fffe", /Teredo form of 127\.0\.0\.1, a loopback/],
    ["2001:0:4136:e378:8000:63bf:f7f7:f7f7", /reserved/], // client 8.8.8.8: Teredo itself is reserved
    ["not-an-address", /not an IP address/],
  ];
  for (const [address, phrase] of refused) {
    test(`${address} is refused as ${phrase.source}`, () => {
      const finding = classifyAddress(address);
      assert.ok(finding, `${address} was classified public`);
      assert.match(finding, phrase);
    });
  }

  const allowed = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.15.255.255",
    "172.32.0.1",
    "100.63.255.255",
    "100.128.0.1",
    "169.253.255.255",
    "192.0.3.1",
    "198.17.255.255",
    "198.20.0.1",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
  ];
  for (const address of allowed) {
    test(`${address} is public`, () => assert.equal(classifyAddress(address), null));
  }
});

describe("checkUrl", () => {
  test("every IPv4 spelling of 127.0.0.1 is normalised and refused", () => {
    for (const host of ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "0177.1", "127.1", "127.0.1", "0x7F.0.0.1", "127.000.000.001"]) {
      assert.equal(
        reasonOf(checkUrl(`https://${host}:8443/hook`, strict)),
        "127.0.0.1 is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)",
        host,
      );
    }
  });

  test("bracketed IPv6 literals are refused by the address inside", () => {
    assert.match(reasonOf(checkUrl("https://[::1]/", strict))!, /^::1 is a loopback address/);
    assert.match(reasonOf(checkUrl("https://[::ffff:127.0.0.1]/", strict))!, /IPv4-mapped form of 127\.0\.0\.1, a loopback address/);
    assert.match(reasonOf(checkUrl("https://[::ffff:a9fe:a9fe]/latest", strict))!, /169\.254\.169\.254, a cloud metadata address/);
    assert.equal(reasonOf(checkUrl("https://[fe80::1%25eth0]/", strict)), "the target is not a valid URL", "WHATWG URL has no zone ids");
  });

  test("credentials in the URL are refused, so user@host cannot hide the host", () => {
    assert.equal(reasonOf(checkUrl("https://user@127.0.0.1/", open)), "the target URL contains credentials");
    assert.equal(reasonOf(checkUrl("https://example.com:pw@10.0.0.1/", open)), "the target URL contains credentials");
    assert.equal(reasonOf(checkUrl("https://example.com@10.0.0.1/", strict)), "the target URL contains credentials");
  });

  test("only http and https are delivered to", () => {
    for (const url of ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1/", "ws://example.com/"]) {
      assert.match(reasonOf(checkUrl(url, open))!, /only http:\/\/ and https:\/\//, url);
    }
    assert.match(reasonOf(checkUrl("not a url", open))!, /not a valid URL/);
  });

  test("plain http is refused unless allowed, and allowed to private targets when those are", () => {
    assert.match(reasonOf(checkUrl("http://hooks.example.com/x", strict))!, /plain http:\/\/.*WEBHOOKS_ALLOW_HTTP=false/);
    assert.match(reasonOf(checkUrl("http://8.8.8.8/x", privateOnly))!, /plain http:\/\/ to 8\.8\.8\.8, a public address.*WEBHOOKS_ALLOW_HTTP=false/);
    assert.equal(reasonOf(checkUrl("http://127.0.0.1:8787/demo/echo", privateOnly)), null);
    assert.equal(reasonOf(checkUrl("http://8.8.8.8/x", httpOnly)), null);
    assert.equal(reasonOf(checkUrl("http://hooks.example.com/x", httpOnly)), null, "a name is judged once resolved");
  });

  test("public https targets and names pass the URL check; both flags on allow private ones", () => {
    assert.equal(reasonOf(checkUrl("https://hooks.example.com/crm", strict)), null);
    assert.equal(reasonOf(checkUrl("https://8.8.8.8/crm", strict)), null);
    assert.equal(reasonOf(checkUrl("https://[2606:4700:4700::1111]/crm", strict)), null);
    assert.equal(reasonOf(checkUrl("http://127.0.0.1:9/", open)), null);
    assert.equal(reasonOf(checkUrl("http://[::1]:9/", open)), null);
  });
});

describe("checkResolved", () => {
  test("a name is refused when ANY of its addresses is refused, naming the name and the address", () => {
    assert.equal(
      reasonOf(checkResolved("rebind.example", "https:", ["93.184.216.34", "127.0.0.1"], strict)),
      "rebind.example resolves to 127.0.0.1, a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)",
    );
    assert.match(reasonOf(checkResolved("v6.example", "https:", ["2606:4700::1", "fd00:ec2::254"], strict))!, /cloud metadata/);
  });

  test("a name whose addresses are all public is allowed", () => {
    assert.equal(reasonOf(checkResolved("hooks.example", "https:", ["93.184.216.34", "2606:2800:220:1::248"], strict)), null);
  });

  test("a name resolving to nothing is refused", () => {
    assert.match(reasonOf(checkResolved("empty.example", "https:", [], strict))!, /no address/);
  });

  test("plain http to a resolved public address needs WEBHOOKS_ALLOW_HTTP even when private targets are allowed", () => {
    assert.match(reasonOf(checkResolved("hooks.example", "http:", ["93.184.216.34"], privateOnly))!, /WEBHOOKS_ALLOW_HTTP=false/);
    assert.equal(reasonOf(checkResolved("localhost", "http:", ["127.0.0.1", "::1"], privateOnly)), null);
    assert.equal(reasonOf(checkResolved("hooks.example", "http:", ["93.184.216.34"], httpOnly)), null);
  });

  test("with private targets allowed every address class passes", () => {
    for (const address of ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00:ec2::254", "::ffff:127.0.0.1"]) {
      assert.equal(reasonOf(checkResolved(address, "https:", [address], privateOnly)), null, address);
    }
  });
});
