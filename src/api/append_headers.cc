#include "api/append_headers.h"

#include <strings.h>

#include "api/http_util.h"

namespace ds {

namespace {
std::optional<uint64_t> producer_number(const std::string& s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 9007199254740991ULL) return std::nullopt;  // 2^53-1, for JavaScript clients
  return v;
}
}  // namespace

std::string parse_append_headers(const HttpRequest& req, AppendHeaders* out) {
  const std::string* closed = req.header("stream-closed");
  out->close = closed && strcasecmp(closed->c_str(), "true") == 0;
  if (const std::string* seq = req.header("stream-seq")) out->stream_seq = *seq;
  const std::string* id = req.header("producer-id");
  const std::string* epoch = req.header("producer-epoch");
  const std::string* seq = req.header("producer-seq");
  int present = (id != nullptr) + (epoch != nullptr) + (seq != nullptr);
  if (present == 0) return "";
  if (present != 3) return "Producer-Id, Producer-Epoch and Producer-Seq must be sent together";
  if (id->empty()) return "Producer-Id must not be empty";
  if (id->size() > 256) return "Producer-Id is longer than 256 bytes";
  auto e = producer_number(*epoch), s = producer_number(*seq);
  if (!e) return "Producer-Epoch must be a non-negative integer";
  if (!s) return "Producer-Seq must be a non-negative integer";
  out->producer = ProducerStamp{*id, *e, *s};
  return "";
}

std::optional<HttpResponse> writer_state_rejection(const AppendResult& r,
                                                   const std::string& request_id) {
  using O = AppendResult::Outcome;
  switch (r.outcome) {
    case O::kStaleEpoch: {
      HttpResponse res = error_response(403, "permission_error",
                                        "stale producer epoch (fenced by a newer one)", request_id);
      res.set("Producer-Epoch", std::to_string(r.producer_epoch));
      return res;
    }
    case O::kEpochSeqInvalid:
      return error_response(400, "invalid_request_error",
                            "a new producer epoch must start at Producer-Seq 0", request_id);
    case O::kSeqGap: {
      HttpResponse res = error_response(409, "conflict_error", "producer sequence gap", request_id);
      res.set("x-should-retry", "false");
      res.set("Producer-Expected-Seq", std::to_string(r.expected_seq));
      res.set("Producer-Received-Seq", std::to_string(r.received_seq));
      return res;
    }
    case O::kStreamSeqRegression: {
      HttpResponse res = error_response(409, "conflict_error",
                                        "Stream-Seq must be greater than the last one", request_id);
      res.set("x-should-retry", "false");
      return res;
    }
    default:
      return std::nullopt;
  }
}

void set_producer_headers(const AppendResult& r, HttpResponse* res) {
  res->set("Producer-Epoch", std::to_string(r.producer_epoch));
  res->set("Producer-Seq", std::to_string(r.producer_seq));
}

}  // namespace ds
