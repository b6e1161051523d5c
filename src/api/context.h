// ApiContext: what request handlers share — the store, the options and the server's state.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <memory>

#include "cli/serve_options.h"
#include "core/session_store.h"
#include "core/stream_store.h"
#include "api/access_log.h"
#include "api/limits.h"
#include "store/api_keys.h"
#include "store/catalog.h"

namespace ds {

class SearchIndex;  // search/index.h
class Indexer;      // search/indexer.h
class Tier;         // store/tier.h
class Subscriptions;  // core/subscriptions.h
class SigningKeys;    // core/signing_keys.h

struct ApiContext {
  StreamStore* streams = nullptr;
  SessionStore* sessions = nullptr;
  ApiKeys* keys = nullptr;
  Catalog* catalog = nullptr;
  TenantLimits* limits = nullptr;
  AccessLog* access_log = nullptr;  // null = no access log
  SearchIndex* search_index = nullptr;  // null = search disabled
  Indexer* indexer = nullptr;
  // Searches run here, off the I/O threads (api/blocking.h); null = on the I/O thread.
  boost::asio::thread_pool* search_pool = nullptr;
  // Subscription requests (each a catalog commit) run here, so they never queue behind
  // searches nor searches behind them; null = on the I/O thread.
  boost::asio::thread_pool* control_pool = nullptr;
  Subscriptions* subscriptions = nullptr;  // null: the __ds subscription APIs answer 501
  const SigningKeys* signing_keys = nullptr;
  Tier* tier = nullptr;  // set only with --durability s3: appends wait for their upload
  ServeOptions options;
  // Whether the server may run open (no API keys: everything is tenant "default"): only on a
  // loopback address, or with --allow-unauthenticated. Decided at start-up; revoking the last
  // key of a server that may not run open refuses every request instead of opening it.
  bool open_allowed = false;
  // Listening on loopback: when open, browsers are the remaining way in, so cross-site requests
  // and foreign Host names (DNS rebinding) are refused.
  bool open_loopback_only = false;
  std::atomic<bool> ready{false};
  std::atomic<bool> shutting_down{false};
};

}  // namespace ds
