// Search query syntax → Xapian query.
//
//   words            every word is required; ranked by BM25 on English stems, with a small bonus
//                    when the exact (unstemmed) form occurs
//   "a phrase"       the words in this order, adjacent (exact forms, no stemming)
//   a OR b           either; OR binds tighter than the implicit AND ("a OR b c" = (a|b) & c)
//   -word, -"phrase" excluded; also NOT word
//   type:T           only events of type T (several type: terms are alternatives); -type:T
//                    excludes. Filters do not change scores.
// Words are split and lower-cased exactly as the indexer does (Xapian's TermGenerator), so
// "foo-bar" or "agent.tool_use" in a query is matched as a phrase of its parts. A word repeated
// as its own clause ("error error") counts once.
//
// ParsedQuery::query uses plain Xapian term leaves (weighted by the Enquire's weighting scheme),
// the exact-form bonus as OP_AND_MAYBE(…, OP_SCALE_WEIGHT(OR of exact forms, kExactFormBonus)):
// the query as it reads in a Xapian database holding the words (snippets and tests use it).
// build() makes the query with the caller's leaves for every word and phrase instead — the index
// keeps words outside Xapian (text_view.h): `leaf` for every single term (stemmed words, single
// quoted words, excluded words), `phrase` for every phrase. A stemmed word's leaf also gets its
// exact form and must add the bonus itself (SearchIndex gives Bm25Source leaves, which do, and
// PhraseSource leaves). Both score every document the same. Type filters stay plain terms (XT, in Xapian).
//
// Rejected with kInvalid and a message meant for the API user: an empty query, an unterminated
// quote, an empty phrase, OR/NOT without a term on each side, a lone '-', an empty or malformed
// type:, -term inside an OR group, a query with no positive search word, more than kMaxQueryTerms
// terms or more than kMaxQueryBytes bytes.
#pragma once

#include <xapian.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/status.h"

namespace ds {

inline constexpr size_t kMaxQueryBytes = 1000;
inline constexpr size_t kMaxQueryTerms = 32;
inline constexpr double kExactFormBonus = 0.5;  // weight of the unstemmed-term bonus

// Term prefixes in the index.
inline constexpr std::string_view kPrefixSession = "XS";  // boolean: session id
inline constexpr std::string_view kPrefixType = "XT";     // boolean: event type
inline constexpr std::string_view kPrefixTenant = "XK";   // boolean: tenant
inline constexpr std::string_view kPrefixStem = "Z";      // stemmed words (TermGenerator's)
inline constexpr std::string_view kPrefixLength = "XL";   // wdf: the text's length

struct QueryPlan;  // the parsed clauses (query.cc)

struct ParsedQuery {
  // `bonus`: the exact form to add kExactFormBonus × its weight for, or empty.
  using Leaf = std::function<Xapian::Query(const std::string& term, const std::string& bonus)>;
  using PhraseLeaf = std::function<Xapian::Query(const std::vector<std::string>& words)>;

  Xapian::Query query;  // ranked part, type filters applied; plain term leaves
  // The same query with `leaf(term, bonus)` for every single term and `phrase(words)` for every
  // phrase.
  Xapian::Query build(const Leaf& leaf, const PhraseLeaf& phrase) const;
  // The index terms of the query's positive words, for snippets: each word's term (its "Z" stem,
  // or the word itself when it has none or is quoted), a stemmed word's exact form too, and the
  // words of phrases. Excluded words and type filters are not in it.
  std::vector<std::string> snippet_terms() const;
  // For a query that only ANDs single words (no OR group, phrase, exclusion or type:), the
  // (term, bonus) of each, in the order build() passes them to its leaf; else empty.
  std::vector<std::pair<std::string, std::string>> conjunction() const;

  std::shared_ptr<const QueryPlan> plan;
};

Status parse_search_query(std::string_view text, ParsedQuery* out);

// The stemmer used at index and query time (this thread's instance; do not share across threads).
const Xapian::Stem& search_stemmer();

}  // namespace ds
