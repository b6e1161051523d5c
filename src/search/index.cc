#include "search/index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <fstream>
#include <shared_mutex>

#include <spdlog/spdlog.h>

#include "search/bm25.h"
#include "search/bm25_source.h"
#include "search/conjunction.h"
#include "search/doc_lengths.h"
#include "search/doc_range.h"
#include "search/phrase_source.h"
#include "search/posting_cache.h"
#include "search/revision_gate.h"
#include "search/side_thread.h"
#include "search/snippet.h"
#include "search/text_store.h"
#include "search/text_view.h"

namespace ds {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormatKey = "ds:format";
// 1: words in Xapian (TermGenerator); 2: words in text segments (text_store.h).
constexpr const char* kFormat = "2";
constexpr const char* kSegmentsKey = "ds:segments";
constexpr const char* kMarkPrefix = "p:";
constexpr size_t kMaxTermBytes = 245;  // Xapian glass: longer terms make add_document throw
constexpr Xapian::doccount kCheckAtLeast = 1000;
constexpr const char* kUncleanMarker = "UNCLEAN";
constexpr int kSearchAttempts = 10;
// A split search reads offset + limit hits from each half: deeper pages run in one pass.
constexpr size_t kMaxSplitHits = 1000;

std::string boot_id() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id.empty() ? "unknown" : id;
}

void fsync_path(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// fsyncs every file and directory under `root` (and root itself).
void sync_tree(const std::string& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      fsync_path(it->path().string(), false);
    } else if (it->is_directory(ec)) {
      fsync_path(it->path().string(), true);
    }
  }
  fsync_path(root, true);
}

std::string mark_key(const std::string& session_id) { return kMarkPrefix + session_id; }

bool parse_mark(const std::string& v, SessionMark* m) {
  size_t sp = v.find(' ');
  if (sp == std::string::npos) return false;
  try {
    m->catalog_id = std::stoll(v.substr(0, sp));
    m->next = std::stoull(v.substr(sp + 1));
  } catch (...) {
    return false;
  }
  return true;
}

std::string unescape_tenant(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size()) {
      out.push_back(static_cast<char>(std::stoi(name.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(name[i]);
    }
  }
  return out;
}

}  // namespace

struct SearchIndex::Tenant {
  std::string name;
  std::string path;
  std::unique_ptr<Xapian::WritableDatabase> writer;
  bool in_txn = false;
  std::mutex readers_mu;
  std::vector<std::unique_ptr<Xapian::Database>> readers;  // idle readers
  // Readers hold it shared while they read, commits exclusively (revision_gate.h).
  RevisionGate gate;
  DocLengths lengths;
  std::unique_ptr<TextStore> text;
  std::unique_ptr<PostingCache> postings;
};

SearchIndex::SearchIndex(IndexOptions options)
    : options_(std::move(options)),
      side_(std::make_unique<SideThread>()),
      cache_budget_(std::make_shared<PostingCache::Budget>(options_.posting_cache_bytes)) {}

SearchIndex::~SearchIndex() { close(); }

void SearchIndex::close() {
  std::lock_guard lk(mu_);
  bool ok = true;
  for (auto& [name, t] : tenants_) {
    try {
      std::lock_guard gate(t->gate);
      if (t->writer && t->in_txn) t->writer->cancel_transaction();
      if (t->writer) t->writer->close();
    } catch (const Xapian::Error& e) {
      ok = false;
      spdlog::warn("search index {}: close: {}", name, e.get_msg());
    }
  }
  tenants_.clear();
  if (!options_.fsync && opened_ && ok) {
    // Clean close: make the unsynced commits durable, then drop the marker.
    sync_tree(options_.root);
    std::error_code ec;
    fs::remove(options_.root + "/" + kUncleanMarker, ec);
    fsync_path(options_.root, true);
  }
  opened_ = false;
}

Status SearchIndex::check_unclean_marker() {
  const std::string marker = options_.root + "/" + kUncleanMarker;
  const std::string boot = boot_id();
  std::error_code ec;
  if (fs::exists(marker, ec)) {
    std::ifstream f(marker);
    std::string was;
    std::getline(f, was);
    if (was != boot) {
      spdlog::warn("search index {} was not closed cleanly before a machine restart (its commits "
                   "were not fsynced); deleting it, the indexer rebuilds it from the logs",
                   options_.root);
      for (const auto& entry : fs::directory_iterator(options_.root, ec)) {
        if (entry.is_directory()) fs::remove_all(entry.path(), ec);
      }
    }
  }
  if (options_.fsync) {
    // Commits are durable from now on; make what an earlier unsynced run left durable too.
    if (fs::exists(marker, ec)) {
      sync_tree(options_.root);
      fs::remove(marker, ec);
      fsync_path(options_.root, true);
    }
    return Status::ok();
  }
  {
    std::string tmp = marker + ".tmp";
    std::ofstream f(tmp, std::ios::trunc);
    f << boot << "\n";
    f.close();
    if (!f) return Status::io_error("cannot write " + tmp);
    fsync_path(tmp, false);
    fs::rename(tmp, marker, ec);
    if (ec) return Status::io_error("cannot write " + marker + ": " + ec.message());
    fsync_path(options_.root, true);
  }
  return Status::ok();
}

std::string SearchIndex::tenant_dir_name(const std::string& tenant) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : tenant) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || (c == '.' && !out.empty());
    if (plain) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (out.empty()) out = "%";
  return out;
}

Status SearchIndex::open_writer(const std::string& tenant, std::shared_ptr<Tenant>* out) {
  auto t = std::make_shared<Tenant>();
  t->name = tenant;
  t->postings = std::make_unique<PostingCache>(cache_budget_, options_.posting_cache_min_docs);
  t->path = options_.root + "/" + tenant_dir_name(tenant);
  int flags = Xapian::DB_CREATE_OR_OPEN | Xapian::DB_BACKEND_GLASS;
  if (!options_.fsync) flags |= Xapian::DB_NO_SYNC;
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      std::error_code ec;
      fs::create_directories(options_.root, ec);
      t->writer = std::make_unique<Xapian::WritableDatabase>(t->path, flags);
      std::string format = t->writer->get_metadata(kFormatKey);
      if (format.empty() && t->writer->get_doccount() == 0) {
        t->writer->set_metadata(kFormatKey, kFormat);
        t->writer->commit();
        format = kFormat;
      }
      if (format != kFormat) throw Xapian::DatabaseVersionError("index format " + format);
      t->text = std::make_unique<TextStore>(t->path + "/text", options_.fsync);
      if (Status s = t->text->open(t->writer->get_metadata(kSegmentsKey)); !s) {
        throw Xapian::DatabaseCorruptError(s.message());
      }
      *out = std::move(t);
      return Status::ok();
    } catch (const Xapian::DatabaseLockError& e) {
      return Status::unavailable("search index " + t->path + " is locked: " + e.get_msg());
    } catch (const Xapian::Error& e) {
      if (attempt == 1) return Status::io_error("search index " + t->path + ": " + e.get_msg());
      spdlog::warn("search index {} unusable ({}: {}); rebuilding it from the logs", t->path,
                   e.get_type(), e.get_msg());
      t->writer.reset();
      std::error_code ec;
      fs::remove_all(t->path, ec);
    }
  }
  return Status::io_error("unreachable");
}

Status SearchIndex::open(std::map<std::string, std::map<std::string, SessionMark>>* marks) {
  std::error_code ec;
  fs::create_directories(options_.root, ec);
  if (ec) return Status::io_error("cannot create " + options_.root + ": " + ec.message());
  if (Status s = check_unclean_marker(); !s) return s;
  opened_ = true;
  for (const auto& entry : fs::directory_iterator(options_.root, ec)) {
    if (!entry.is_directory()) continue;
    std::string tenant = unescape_tenant(entry.path().filename().string());
    std::shared_ptr<Tenant> t;
    if (Status s = open_writer(tenant, &t); !s) return s;
    auto& m = (*marks)[tenant];
    try {
      for (auto it = t->writer->metadata_keys_begin(kMarkPrefix);
           it != t->writer->metadata_keys_end(kMarkPrefix); ++it) {
        SessionMark mark;
        if (parse_mark(t->writer->get_metadata(*it), &mark)) {
          m[(*it).substr(std::string_view(kMarkPrefix).size())] = mark;
        }
      }
    } catch (const Xapian::Error& e) {
      return Status::io_error("search index " + t->path + ": " + e.get_msg());
    }
    std::lock_guard lk(mu_);
    tenants_[tenant] = std::move(t);
  }
  if (ec) return Status::io_error("cannot list " + options_.root + ": " + ec.message());
  return Status::ok();
}

Status SearchIndex::tenant_for_write(const std::string& tenant, Tenant** out) {
  std::shared_ptr<Tenant> t;
  {
    std::lock_guard lk(mu_);
    auto it = tenants_.find(tenant);
    if (it != tenants_.end()) t = it->second;
  }
  if (!t) {
    if (Status s = open_writer(tenant, &t); !s) return s;
    std::lock_guard lk(mu_);
    tenants_[tenant] = t;
  }
  try {
    if (!t->in_txn) {
      // begin_transaction(true) commits whatever is pending first (nothing, normally): a commit,
      // so under the gate like every other.
      std::lock_guard gate(t->gate);
      t->writer->begin_transaction(true);
      t->in_txn = true;
    }
  } catch (const Xapian::Error& e) {
    return Status::io_error("search index " + t->path + ": " + e.get_msg());
  }
  *out = t.get();
  return Status::ok();
}

Xapian::Document SearchIndex::make_skeleton(const std::string& tenant,
                                            const std::string& session_id, uint64_t position,
                                            std::string_view type, uint32_t length) {
  Xapian::Document doc;
  std::string term;
  term.reserve(2 + std::max({session_id.size(), type.size(), tenant.size()}));
  // Xapian refuses a document with a term over 245 bytes, and the indexer would retry it
  // forever. Ids and types are bounded well below that at the API; an overlong one (an event
  // stored before the type limit) is indexed without that filter term.
  auto add_filter = [&](std::string_view prefix, std::string_view value) {
    term.assign(prefix).append(value);
    if (term.size() <= kMaxTermBytes) doc.add_boolean_term(term);
  };
  add_filter(kPrefixSession, session_id);
  add_filter(kPrefixType, type);
  add_filter(kPrefixTenant, tenant);
  // The text's length as the document's length: the one term with a wdf.
  if (length > 0) doc.add_term(std::string(kPrefixLength), length);
  doc.set_data(session_id + "\n" + std::to_string(position));
  return doc;
}

Status SearchIndex::add(const std::string& tenant, const std::string& session_id,
                        uint64_t position, std::string_view type, const std::string& text) {
  Tenant* t = nullptr;
  if (Status s = tenant_for_write(tenant, &t); !s) return s;
  try {
    // An id above every earlier one, also above one whose Xapian add failed after its words
    // went to the segment builder (those postings belong to no document: not live).
    const Xapian::docid did = std::max(t->writer->get_lastdocid() + 1, t->text->next_doc());
    const uint32_t length = t->text->add(did, text);
    t->writer->replace_document(did, make_skeleton(tenant, session_id, position, type, length));
  } catch (const Xapian::Error& e) {
    return Status::io_error("search index " + t->path + ": " + e.get_msg());
  }
  return Status::ok();
}

Status SearchIndex::remove_session(const std::string& tenant, const std::string& session_id) {
  Tenant* t = nullptr;
  if (Status s = tenant_for_write(tenant, &t); !s) return s;
  try {
    t->writer->delete_document(std::string(kPrefixSession) + session_id);
    t->writer->set_metadata(mark_key(session_id), "");
  } catch (const Xapian::Error& e) {
    return Status::io_error("search index " + t->path + ": " + e.get_msg());
  }
  return Status::ok();
}

Status SearchIndex::set_mark(const std::string& tenant, const std::string& session_id,
                             SessionMark mark) {
  Tenant* t = nullptr;
  if (Status s = tenant_for_write(tenant, &t); !s) return s;
  try {
    t->writer->set_metadata(mark_key(session_id),
                            std::to_string(mark.catalog_id) + " " + std::to_string(mark.next));
  } catch (const Xapian::Error& e) {
    return Status::io_error("search index " + t->path + ": " + e.get_msg());
  }
  return Status::ok();
}

Status SearchIndex::commit() {
  std::vector<std::shared_ptr<Tenant>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [n, t] : tenants_) all.push_back(t);
  }
  Status result;
  for (auto& t : all) {
    if (!t->in_txn) {
      // Nothing added, but a finished merge is listed now rather than at the tenant's next
      // batch, which may not come (its inputs and output would both stay on disk, and searches
      // would read the inputs).
      Tenant* same = nullptr;
      if (!t->text->merge_done() || !tenant_for_write(t->name, &same)) continue;
    }
    // The batch's words go to a new segment file first; the commit lists it (text_store.h).
    std::string manifest;
    Status s = t->text->flush(&manifest);
    bool discarded = true;
    s = commit_transaction(t.get(), s ? &manifest : nullptr, s, &discarded);
    if (discarded) {
      t->text->committed(manifest, s.is_ok());
    } else {
      t->text->commit_unknown();  // the list may still be committed later: keep its files
    }
    if (!s) {
      result = s;
      continue;
    }
    merge_text(t.get());
  }
  return result;
}

Status SearchIndex::commit_transaction(Tenant* t, const std::string* manifest, Status prepared,
                                       bool* discarded) {
  std::lock_guard gate(t->gate);
  *discarded = true;
  t->in_txn = false;  // committed or cancelled below
  bool open = true;   // the transaction; commit_transaction() ends it even when it fails
  try {
    if (!prepared) throw Xapian::DatabaseError(prepared.message());
    t->writer->set_metadata(kSegmentsKey, *manifest);
    open = false;
    t->writer->commit_transaction();
    return Status::ok();
  } catch (const Xapian::Error& e) {
    // After a failed commit Xapian keeps the changes pending: the next begin_transaction(true)
    // would commit them, while the indexer, told the batch failed, adds its events again
    // (duplicates) — and a half-written batch could be published with marks claiming events it
    // lacks, or a segment list naming a file that was removed. Discard them: the batch is redone
    // whole.
    try {
      if (!open) t->writer->begin_transaction(false);
      t->writer->cancel_transaction();
    } catch (const Xapian::Error& e2) {
      spdlog::error("search index {}: cannot discard a failed commit's changes: {}", t->path,
                    e2.get_msg());
      *discarded = false;
    }
    return Status::io_error("search index " + t->path + ": commit: " + e.get_msg());
  }
}

void SearchIndex::merge_text(Tenant* t) {
  // Documents of deleted sessions are not carried into the merged segment: the lengths table
  // read from the writer (at the commit just made) reads 0 for them. Documents deleted later
  // stay in it, not live (text_view.h), until a later merge.
  try {
    DocLengths::View live = t->lengths.update(*t->writer);
    t->text->start_merge([live](uint32_t did) { return live[did] != 0; });
  } catch (const Xapian::Error& e) {
    // The segments stay as they are: searches are unaffected, only slower with many segments.
    spdlog::warn("search index {}: text segment merge: {}", t->path, e.get_msg());
  }
}

std::shared_ptr<SearchIndex::Tenant> SearchIndex::tenant_for_read(const std::string& tenant) {
  std::lock_guard lk(mu_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? nullptr : it->second;
}

uint64_t SearchIndex::doc_count(const std::string& tenant) {
  SearchRequest none;
  none.restrict_sessions = true;
  SearchResults r;
  if (!search(tenant, none, &r)) return 0;
  return r.indexed_events;
}

std::shared_ptr<Xapian::Database> SearchIndex::lease_reader(const std::shared_ptr<Tenant>& t,
                                                            std::shared_ptr<bool>* failed) {
  std::unique_ptr<Xapian::Database> idle;
  {
    std::lock_guard lk(t->readers_mu);
    if (!t->readers.empty()) {
      idle = std::move(t->readers.back());
      t->readers.pop_back();
    }
  }
  if (!idle) idle = std::make_unique<Xapian::Database>(t->path);
  // The reader goes back to the pool when its last user is gone; a reader that failed is
  // dropped instead.
  *failed = std::make_shared<bool>(false);
  std::weak_ptr<Tenant> weak = t;
  return std::shared_ptr<Xapian::Database>(
      idle.release(), [weak, failed = *failed](Xapian::Database* d) {
        std::unique_ptr<Xapian::Database> own(d);
        auto tenant = weak.lock();
        if (!tenant || *failed) return;
        std::lock_guard lk(tenant->readers_mu);
        if (tenant->readers.size() < 16) tenant->readers.push_back(std::move(own));
      });
}

namespace {

struct RankedHit : RankedDoc {  // ordered by ranks_before (conjunction.h)
  SearchHit hit;
};

// Appends the hit of a document with data `data` ("<session id>\n<position>", as add() stores it).
void add_hit(const std::string& data, double weight, Xapian::docid did, std::vector<RankedHit>* out) {
  size_t nl = data.rfind('\n');
  if (nl == std::string::npos) return;
  RankedHit h;
  h.weight = weight;
  h.did = did;
  h.hit.session_id = data.substr(0, nl);
  h.hit.position = std::strtoull(data.c_str() + nl + 1, nullptr, 10);
  h.hit.score = weight;
  out->push_back(std::move(h));
}

// Runs `q` on `db` and appends hits [first, first + count) in rank order; returns Xapian's
// estimate of all matches.
Xapian::doccount collect(const Xapian::Database& db, const Xapian::Query& q, double k1, double b,
                         size_t first, size_t count, std::vector<RankedHit>* out) {
  Xapian::Enquire enquire(db);
  enquire.set_weighting_scheme(Xapian::BM25Weight(k1, 0, 1, b, 0));
  enquire.set_query(q);
  Xapian::MSet mset = enquire.get_mset(static_cast<Xapian::doccount>(first),
                                       static_cast<Xapian::doccount>(count), kCheckAtLeast);
  for (auto it = mset.begin(); it != mset.end(); ++it) {
    add_hit(it.get_document().get_data(), it.get_weight(), *it, out);
  }
  return mset.get_matches_estimated();
}

// As collect() for the conjunction `terms` over documents [lo, hi] (0, 0: all), matched by
// match_conjunction; returns the exact number of matches.
Xapian::doccount collect_conjunction(const Xapian::Database& db,
                                     const std::vector<std::pair<std::string, std::string>>& terms,
                                     double k1, double b, const TextView& view,
                                     Xapian::docid lo, Xapian::docid hi,
                                     size_t first, size_t count, std::vector<RankedHit>* out) {
  std::vector<std::unique_ptr<Bm25Source>> owned;
  std::vector<Bm25Source*> sources;
  for (const auto& [term, bonus] : terms) {
    owned.push_back(std::make_unique<Bm25Source>(term, k1, b, &view, bonus, kExactFormBonus));
    owned.back()->init(db);
    sources.push_back(owned.back().get());
  }
  std::vector<RankedDoc> docs;
  Xapian::doccount total = match_conjunction(sources, lo, hi, first + count, &docs);
  for (size_t i = first; i < docs.size(); ++i) {
    add_hit(db.get_document(docs[i].did).get_data(), docs[i].weight, docs[i].did, out);
  }
  return total;
}

}  // namespace

Status SearchIndex::search(const std::string& tenant, const SearchRequest& req,
                           SearchResults* out) {
  out->snippet_weights_.clear();
  out->hits.clear();
  out->total_hits = 0;
  out->indexed_events = 0;
  std::shared_ptr<Tenant> t = tenant_for_read(tenant);
  if (!t) return Status::ok();
  // No commit until this search has read all it needs: its revision stays readable.
  std::shared_lock gate(t->gate);
  std::shared_ptr<bool> failed, failed2;
  std::shared_ptr<Xapian::Database> db, db2;  // db2: the second half's reader, when split
  try {
    db = lease_reader(t, &failed);
  } catch (const Xapian::Error& e) {
    return Status::io_error("search index " + t->path + ": " + e.get_msg());
  }
  const double k1 = options_.bm25_k1, b = options_.bm25_b;
  // The query for documents [lo, hi] (0, 0: all). Built per thread: Xapian's reference counts
  // are not atomic, so the halves share no query objects.
  auto make_query = [&](const TextView& view, Xapian::docid lo, Xapian::docid hi) {
    Xapian::Query q = req.query.build(
        [&](const std::string& term, const std::string& bonus) {
          return Xapian::Query(
              (new Bm25Source(term, k1, b, &view, bonus, kExactFormBonus))->release());
        },
        [&](const std::vector<std::string>& words) {
          return Xapian::Query((new PhraseSource(words, k1, b, &view))->release());
        });
    if (!req.session_ids.empty()) {
      std::vector<Xapian::Query> s;
      for (const auto& id : req.session_ids) s.emplace_back(std::string(kPrefixSession) + id);
      q = Xapian::Query(Xapian::Query::OP_FILTER, q,
                        Xapian::Query(Xapian::Query::OP_OR, s.begin(), s.end()));
    }
    if (!req.types.empty()) {
      std::vector<Xapian::Query> s;
      for (const auto& ty : req.types) s.emplace_back(std::string(kPrefixType) + ty);
      q = Xapian::Query(Xapian::Query::OP_FILTER, q,
                        Xapian::Query(Xapian::Query::OP_OR, s.begin(), s.end()));
    }
    if (lo != 0) {
      q = Xapian::Query(Xapian::Query::OP_FILTER, q,
                        Xapian::Query((new DocRangeSource(lo, hi))->release()));
    }
    return q;
  };
  // An AND of words with no filter is matched without Xapian's matcher (conjunction.h).
  std::vector<std::pair<std::string, std::string>> conjunction;
  if (options_.direct_conjunctions && req.session_ids.empty() && req.types.empty()) {
    conjunction = req.query.conjunction();
  }
  // Hits [first, first + count) of documents [lo, hi] (0, 0: all) of `on`; returns the number
  // of matches (Xapian's estimate, or exact for a conjunction).
  auto run = [&](const Xapian::Database& on, const TextView& view, Xapian::docid lo,
                 Xapian::docid hi, size_t first, size_t count, std::vector<RankedHit>* out) {
    if (!conjunction.empty()) {
      return collect_conjunction(on, conjunction, k1, b, view, lo, hi, first, count, out);
    }
    return collect(on, make_query(view, lo, hi), k1, b, first, count, out);
  };
  try {
    for (int attempt = 0;; ++attempt) {
      try {
        db->reopen();
        out->indexed_events = db->get_doccount();
        if (req.restrict_sessions && req.session_ids.empty()) break;
        // Split a large search without session filter in two halves by document id, the second
        // on the side thread, when a second reader is at the same revision.
        const size_t wanted = req.offset + req.limit;
        bool split = options_.split_min_docs != 0 && req.session_ids.empty() &&
                     out->indexed_events >= options_.split_min_docs && wanted <= kMaxSplitHits;
        if (split) {
          if (!db2) db2 = lease_reader(t, &failed2);
          db2->reopen();
          split = db2->get_revision() == db->get_revision();
        }
        // This revision's segments, and its live documents.
        std::vector<std::shared_ptr<const TextSegment>> segments;
        if (Status s = t->text->segments(db->get_metadata(kSegmentsKey), &segments); !s) {
          throw Xapian::DatabaseCorruptError(s.message());
        }
        const TextView view(std::move(segments), t->lengths.update(*db), t->postings.get());
        std::vector<RankedHit> ranked;
        if (split) {
          Xapian::docid last = db->get_lastdocid();
          Xapian::docid mid = last / 2;
          std::vector<RankedHit> upper;
          Xapian::doccount upper_total = 0;
          std::exception_ptr upper_error;
          std::mutex done_mu;
          std::condition_variable done_cv;
          bool done = false;
          split = side_->try_run([&] {
            try {
              upper_total = run(*db2, view, mid + 1, last, 0, wanted, &upper);
            } catch (...) {
              upper_error = std::current_exception();
            }
            std::lock_guard lk(done_mu);
            done = true;
            done_cv.notify_all();
          });
          if (split) {
            std::exception_ptr lower_error;
            Xapian::doccount lower_total = 0;
            try {
              lower_total = run(*db, view, 1, mid, 0, wanted, &ranked);
            } catch (...) {
              lower_error = std::current_exception();
            }
            {
              std::unique_lock lk(done_mu);
              done_cv.wait(lk, [&] { return done; });
            }
            if (lower_error) std::rethrow_exception(lower_error);
            if (upper_error) std::rethrow_exception(upper_error);
            ranked.insert(ranked.end(), std::make_move_iterator(upper.begin()),
                          std::make_move_iterator(upper.end()));
            std::sort(ranked.begin(), ranked.end(), ranks_before);
            ranked.erase(ranked.begin(), ranked.begin() + std::min(req.offset, ranked.size()));
            if (ranked.size() > req.limit) ranked.resize(req.limit);
            out->total_hits = static_cast<uint64_t>(lower_total) + upper_total;
          }
        }
        if (!split) {
          out->total_hits = run(*db, view, 0, 0, req.offset, req.limit, &ranked);
        }
        // Snippets weigh the query's words by their idf (BM25's, from the number of documents
        // the segments list for them: deleted ones included, which is close enough here).
        out->snippet_weights_.clear();
        const double n_docs = static_cast<double>(out->indexed_events);
        for (const std::string& term : req.query.snippet_terms()) {
          out->snippet_weights_[term] = Bm25::idf(n_docs, static_cast<double>(view.df_bound(term)));
        }
        out->hits.clear();
        for (auto& h : ranked) out->hits.push_back(std::move(h.hit));
        break;
      } catch (const Xapian::DatabaseModifiedError& e) {
        // Not expected since the gate keeps commits out while this search reads (a second line
        // of defence; logged so that it shows): retry on the latest revision.
        spdlog::warn("search index {}: {} (attempt {})", t->path, e.get_msg(), attempt + 1);
        if (attempt >= kSearchAttempts) throw;
      } catch (const Xapian::DatabaseCorruptError& e) {
        // Before the gate, a reader racing with commits could read a block the writer had just
        // reused ("Expected block N to be level …"). Not expected now; if it happens, start over
        // on fresh handles at the latest commit, and say so.
        spdlog::warn("search index {}: {} (attempt {})", t->path, e.get_msg(), attempt + 1);
        if (attempt >= kSearchAttempts) throw;
        *db = Xapian::Database(t->path);
        if (db2) *db2 = Xapian::Database(t->path);
      }
    }
  } catch (const Xapian::Error& e) {
    *failed = true;
    if (failed2) *failed2 = true;
    out->snippet_weights_.clear();
    out->hits.clear();
    return Status::io_error("search index " + t->path + ": " + e.get_msg());
  }
  return Status::ok();
}

std::string SearchResults::snippet(const std::string& text) const {
  return make_snippet(text, snippet_weights_);
}

}  // namespace ds
