// Subscription: one Durable Streams subscription (protocol §6–7) — its configuration, the
// streams it follows with their acknowledged offsets, and the state of its current wake.
//
// This file is the data model only: parsing and validating a configuration, glob matching,
// and the JSON forms (the API's view and the stored record). Subscriptions (subscriptions.h)
// owns the state machine, persistence and delivery.
//
// Decisions where the protocol leaves room:
// - Positions are this server's stream positions; offsets on the wire are format_offset() of
//   them. `acked_offset` is "processed up to here": a stream has pending work when its tail is
//   past it. A link's acked position only moves forward.
// - Re-confirmation compares the canonical serialisation of the normalised configuration
//   (canonical_config(): the protocol's hash input, compared whole rather than by digest).
// - Glob patterns: `*` is any run of characters within one segment, `**` (a whole segment) is
//   zero or more segments; everything else matches itself. Patterns and explicit paths use the
//   canonical stream-name spelling (percent-escapes normalised as for stream names).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>

#include "http/webhook_client.h"
#include "store/status.h"

namespace ds {

inline constexpr size_t kMaxSubscriptionIdBytes = 256;
inline constexpr size_t kMaxSubscriptionStreams = 1000;   // explicit streams in one request
// pattern (its text as sent) and description; stream paths (streams[], wake_stream) have the
// stream-name limit (1,024 bytes of the canonical form).
inline constexpr size_t kMaxSubscriptionTextBytes = 1024;
inline constexpr int64_t kMinLeaseTtlMs = 1000;
inline constexpr int64_t kMaxLeaseTtlMs = 600000;
inline constexpr int64_t kDefaultLeaseTtlMs = 30000;

struct SubscriptionConfig {
  bool webhook = false;  // type "webhook"; false: "pull-wake"
  std::optional<std::string> pattern;
  std::vector<std::string> streams;  // explicit links at creation: canonical, sorted, unique
  std::string webhook_url;           // webhook only
  std::string wake_stream;           // pull-wake only
  int64_t lease_ttl_ms = kDefaultLeaseTtlMs;
  std::optional<std::string> description;

  std::string canonical_config() const;
};

struct StreamLink {
  bool glob = false;       // matched by the pattern
  bool explicit_ = false;  // named in streams[] (takes precedence when serialised)
  uint64_t acked = 0;      // positions below this are processed
  // The catalog id of the stream the acked position belongs to (0: none seen yet). A stream
  // deleted and created again under the path has a new id: its link starts over at its start.
  int64_t stream_id = 0;
};

struct Subscription {
  std::string tenant;
  std::string id;
  SubscriptionConfig config;
  int64_t created_ms = 0;
  std::string base_url;  // scheme://host of the stream root's server, for callback and JWKS URLs
  std::map<std::string, StreamLink> links;

  // Delivery state.
  uint64_t generation = 0;     // of the latest wake
  std::string wake_id;         // the current wake; empty: none in flight
  std::string holder;          // pull-wake: the worker holding the lease
  int64_t lease_until_ms = 0;  // 0: no lease (webhook: from the wake; pull-wake: from the claim)
  std::map<std::string, uint64_t> snapshot;  // tails handed out with the current wake
  bool failed = false;         // the last delivery failed; a retry is scheduled
  int attempts = 0;            // consecutive failed deliveries
  int64_t next_attempt_ms = 0;  // no new wake before this (retry backoff)

  // Serialised for the catalog (everything above but tenant and id) and back.
  std::string record_json() const;
  static Status from_record(std::string tenant, std::string id, std::string_view json,
                            Subscription* out);
};

// One stream of a wake or a claim.
struct WakeStream {
  std::string path;
  const StreamLink* link = nullptr;
  uint64_t tail = 0;
};

// Parses a PUT body. `canonical_path` turns a raw stream path into its canonical name, or
// returns "" with *why set when it is not a valid stream path. On failure *code is the
// protocol's error code ("INVALID_REQUEST" or "WEBHOOK_URL_REJECTED").
using PathCanonicaliser = std::string (*)(std::string_view raw, std::string* why);
bool parse_subscription_config(std::string_view body, PathCanonicaliser canonical_path,
                               WebhookTargets webhook_targets, SubscriptionConfig* out,
                               std::string* code, std::string* why);

// Parses {"streams":[…]} (explicit membership changes).
bool parse_stream_list(std::string_view body, PathCanonicaliser canonical_path,
                       std::vector<std::string>* out, std::string* why);

// Parses a claim body {"worker": name} (1-256 bytes).
bool parse_worker(std::string_view body, std::string* out);

bool glob_match(std::string_view pattern, std::string_view path);
bool valid_subscription_id(std::string_view id);

// The API's view of a subscription (GET, PUT responses).
std::string subscription_json(const Subscription& s, const std::string& kid);
// {"path","link_type","acked_offset","tail_offset","has_pending"} objects.
boost::json::array wake_streams_json(const std::vector<WakeStream>& streams);

}  // namespace ds
