#include "api/router.h"

#include "api/http_util.h"
#include "api/streams_api.h"

namespace ds {

namespace asio = boost::asio;

asio::awaitable<void> route(ApiContext& ctx, HttpRequest& req, Responder& res) {
  if (req.method == "OPTIONS") co_return co_await res.send(preflight_response(req));
  const std::string& p = req.path;
  if (p == "/healthz" || p == "/readyz") {
    bool ok = p == "/healthz" || ctx.ready.load();
    HttpResponse r(ok ? 200 : 503);
    r.set("Content-Type", "application/json");
    r.set("Cache-Control", "no-store");
    r.body = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"starting\"}";
    add_common_headers(req, &r);
    co_return co_await res.send(std::move(r));
  }
  constexpr std::string_view kStream = "/v1/stream/";
  if (p.rfind(kStream, 0) == 0) {
    co_return co_await handle_stream(ctx, "default", p.substr(kStream.size()), req, res);
  }
  HttpResponse r = error_response(404, "not_found_error", "no such endpoint: " + req.method + " " + p,
                                  req.request_id);
  add_common_headers(req, &r);
  co_await res.send(std::move(r));
}

}  // namespace ds
