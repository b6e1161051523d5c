#include "http/webhook_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <cstring>
#include <mutex>

namespace ds {

namespace {

constexpr size_t kMaxResponseBytes = 64 * 1024;

bool is_public_v4(uint32_t a) {  // host byte order
  auto in = [a](uint32_t net, int bits) {
    return bits == 0 || (a >> (32 - bits)) == (net >> (32 - bits));
  };
  return !(in(0x00000000, 8) ||    // "this" network
           in(0x0A000000, 8) ||    // 10/8
           in(0x64400000, 10) ||   // 100.64/10 shared (CGNAT)
           in(0x7F000000, 8) ||    // loopback
           in(0xA9FE0000, 16) ||   // link-local (cloud metadata lives here)
           in(0xAC100000, 12) ||   // 172.16/12
           in(0xC0000000, 24) ||   // 192.0.0/24 protocol assignments
           in(0xC0000200, 24) ||   // TEST-NET-1
           in(0xC0A80000, 16) ||   // 192.168/16
           in(0xC6120000, 15) ||   // 198.18/15 benchmarking
           in(0xC6336400, 24) ||   // TEST-NET-2
           in(0xCB007100, 24) ||   // TEST-NET-3
           in(0xE0000000, 4) ||    // multicast
           in(0xF0000000, 4));     // reserved, broadcast
}

bool is_dev_loopback_v4(uint32_t a) { return (a >> 8) == 0x7F0000; }  // 127.0.0.x

uint32_t v4_of(const unsigned char* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

// For an IPv6 address: public, or refused (private, local, mapped/translated non-public v4…).
bool is_public_v6(const std::array<unsigned char, 16>& b) {
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b.data(), kMapped, 12) == 0 || std::memcmp(b.data(), kNat64, 12) == 0) {
    return is_public_v4(v4_of(b.data() + 12));
  }
  bool zero_prefix = true;  // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
  for (int i = 0; i < 12; ++i) zero_prefix = zero_prefix && b[i] == 0;
  if (zero_prefix) return false;
  if ((b[0] & 0xfe) == 0xfc) return false;                  // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;  // fe80::/10 link-local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return false;  // fec0::/10 site-local (old)
  if (b[0] == 0xff) return false;                           // multicast
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return false;  // docs
  return true;
}

bool is_v6_loopback(const std::array<unsigned char, 16>& b) {
  for (int i = 0; i < 15; ++i) {
    if (b[i] != 0) return false;
  }
  return b[15] == 1;
}

bool iends_with(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char c = s[s.size() - suffix.size() + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

bool is_localhost_name(std::string_view host) {
  return iends_with(host, "localhost") &&
         (host.size() == 9 || host[host.size() - 10] == '.');
}

// What a delivery may connect to (checked per resolved address).
struct Target {
  bool allow_private = false;
  bool dev_host = false;  // the URL named localhost: loopback addresses are fine
  std::string refused;    // the first address refused, for the error message
};

curl_socket_t open_socket(void* clientp, curlsocktype, struct curl_sockaddr* a) {
  auto* t = static_cast<Target*>(clientp);
  bool ok = t->allow_private;
  char text[INET6_ADDRSTRLEN] = "?";
  if (a->family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a->addr);
    uint32_t v4 = ntohl(in->sin_addr.s_addr);
    ok = ok || is_public_v4(v4) || (t->dev_host && (v4 >> 24) == 0x7F);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
  } else if (a->family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a->addr);
    std::array<unsigned char, 16> b;
    std::memcpy(b.data(), &in6->sin6_addr, 16);
    ok = ok || is_public_v6(b) || (t->dev_host && is_v6_loopback(b));
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  }
  if (!ok) {
    if (t->refused.empty()) t->refused = text;
    return CURL_SOCKET_BAD;
  }
  return ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

// Keeps the first kMaxResponseBytes of the answer and drops the rest (a receiver answering
// with a big page has still received the delivery).
size_t collect(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  size_t len = size * n;
  if (out->size() < kMaxResponseBytes) out->append(data, std::min(len, kMaxResponseBytes - out->size()));
  return len;
}

}  // namespace

std::string check_webhook_url(std::string_view text, WebhookTargets targets) {
  if (text.size() > 2048) return "webhook.url is longer than 2048 bytes";
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return "webhook.url is not an absolute URL";
  const auto& u = *parsed;
  std::string scheme(u.scheme());
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "https" && scheme != "http") return "webhook.url must use https:// (or http:// to localhost)";
  if (u.has_userinfo()) return "webhook.url must not contain user information";
  if (u.encoded_host().empty()) return "webhook.url has no host";
  if (targets == WebhookTargets::kAny) return "";
  const bool local_ok = targets == WebhookTargets::kPublicAndLocal;
  const char* kLocal = "webhook.url names this machine: allowed only while the server runs "
                       "without API keys (development) or with --webhook-allow-private";
  bool https = scheme == "https";
  switch (u.host_type()) {
    case boost::urls::host_type::ipv4: {
      uint32_t a = u.host_ipv4_address().to_uint();
      if (is_dev_loopback_v4(a)) return local_ok ? "" : kLocal;
      if (!is_public_v4(a)) return "webhook.url names a private, loopback or reserved address";
      return https ? "" : "webhook.url must use https:// for hosts other than localhost";
    }
    case boost::urls::host_type::ipv6: {
      auto bytes = u.host_ipv6_address().to_bytes();
      std::array<unsigned char, 16> b;
      std::memcpy(b.data(), bytes.data(), 16);
      if (is_v6_loopback(b)) return local_ok ? "" : kLocal;
      if (!is_public_v6(b)) return "webhook.url names a private, loopback or reserved address";
      return https ? "" : "webhook.url must use https:// for hosts other than localhost";
    }
    case boost::urls::host_type::name: {
      std::string host(u.encoded_host());
      if (is_localhost_name(host)) return local_ok ? "" : kLocal;
      return https ? "" : "webhook.url must use https:// for hosts other than localhost";
    }
    default:
      return "webhook.url has an unsupported host form";
  }
}

WebhookResponse post_webhook(const std::string& url, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers,
                             int64_t timeout_ms, WebhookTargets targets) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  WebhookResponse out;
  if (std::string why = check_webhook_url(url, targets); !why.empty()) {
    out.error = why;
    return out;
  }
  Target target;
  target.allow_private = targets == WebhookTargets::kAny;
  auto parsed = boost::urls::parse_absolute_uri(url);
  // Loopback addresses are fine for a URL that passed as the development exception (a
  // localhost name, or a loopback literal, which check_webhook_url judged already).
  target.dev_host = targets == WebhookTargets::kPublicAndLocal && parsed &&
                    (parsed->host_type() == boost::urls::host_type::name
                         ? is_localhost_name(std::string(parsed->encoded_host()))
                         : true);
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    out.error = "curl_easy_init failed";
    return out;
  }
  curl_slist* list = nullptr;
  for (const auto& [k, v] : headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  list = curl_slist_append(list, "Expect:");
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(timeout_ms, 5000)));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &target);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    out.sent = true;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  } else if (!target.refused.empty()) {
    out.error = "webhook host resolves to a refused address (" + target.refused + ")";
  } else {
    out.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return out;
}

}  // namespace ds
