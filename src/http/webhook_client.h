// Webhook client: outbound POSTs to subscription webhooks, with the protocol's SSRF rules.
//
// Which targets are allowed (Durable Streams protocol §6.2), by WebhookTargets:
// - kPublic: `https://` to a public address only;
// - kPublicAndLocal: also the development exception, `http://` or `https://` to `localhost` (or
//   `*.localhost`), 127.0.0.x or [::1];
// - kAny: any http(s) URL (the operator's --webhook-allow-private, for webhooks on the
//   operator's own network).
// Refused otherwise: other schemes, user info, plain `http://` to any other host, and private,
// loopback, link-local, shared (CGNAT), multicast, reserved and unspecified addresses,
// including IPv4-mapped and NAT64 IPv6 forms of them.
// check_webhook_url() applies these rules to the URL's text (an IP literal is judged by its
// address). post_webhook() applies them again to every address a host name resolves to, at
// connect time (so a name that resolves to a private address, or is rebound to one after the
// subscription was created, is refused), follows no redirects, uses no proxy, and keeps at most
// the first 64 KiB of the response (the rest is read and dropped).
// Thread-safe; post_webhook() blocks (bounded by its timeouts): call it off the I/O threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ds {

enum class WebhookTargets { kPublic, kPublicAndLocal, kAny };

// "" when `url` may receive webhooks, otherwise why not.
std::string check_webhook_url(std::string_view url, WebhookTargets targets);

struct WebhookResponse {
  bool sent = false;      // a response was received (any status)
  long status = 0;        // HTTP status when sent
  std::string body;       // at most 64 KiB
  std::string error;      // why not sent (connection refused, timeout, refused address…)
};

WebhookResponse post_webhook(const std::string& url, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers,
                             int64_t timeout_ms, WebhookTargets targets);

}  // namespace ds
