#include "search/query.h"

#include <xapian/unicode.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace ds {

namespace {

// Lower-cased words of `text`, in order, split as the indexer's TermGenerator splits them.
std::vector<std::string> words_of(const std::string& text) {
  Xapian::TermGenerator tg;
  tg.set_stemming_strategy(Xapian::TermGenerator::STEM_NONE);
  Xapian::Document doc;
  tg.set_document(doc);
  tg.index_text(text);
  std::vector<std::pair<Xapian::termpos, std::string>> at;
  for (auto t = doc.termlist_begin(); t != doc.termlist_end(); ++t) {
    for (auto p = t.positionlist_begin(); p != t.positionlist_end(); ++p) at.emplace_back(*p, *t);
  }
  std::sort(at.begin(), at.end());
  std::vector<std::string> out;
  for (auto& [p, w] : at) out.push_back(std::move(w));
  return out;
}

// Mirrors TermGenerator's STEM_SOME rule: only words starting with a letter get a Z term.
bool gets_stemmed(const std::string& word) {
  Xapian::Utf8Iterator u(word);
  if (u == Xapian::Utf8Iterator()) return false;
  constexpr unsigned kMask = (1u << Xapian::Unicode::LOWERCASE_LETTER) |
                             (1u << Xapian::Unicode::TITLECASE_LETTER) |
                             (1u << Xapian::Unicode::MODIFIER_LETTER) |
                             (1u << Xapian::Unicode::OTHER_LETTER);
  return (kMask >> Xapian::Unicode::get_category(*u)) & 1;
}

bool valid_type_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == ':';
}

struct Item {
  enum class Kind { kText, kType } kind = Kind::kText;
  bool negated = false;
  std::vector<std::string> words;  // kText
  bool quoted = false;
  std::string type;  // kType
};

struct Parser {
  std::string_view s;
  size_t i = 0;
  std::string error;
  size_t terms = 0;

  void skip_space() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  // A bare token: up to whitespace or a quote.
  std::string_view bare() {
    size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' &&
           s[i] != '"') {
      ++i;
    }
    return s.substr(b, i - b);
  }
  // Reads one item at i (after any '-'); false with error set, or true with *skip when the token
  // had no words (punctuation only).
  bool item(Item* it, bool* skip) {
    *skip = false;
    if (i < s.size() && s[i] == '"') {
      size_t close = s.find('"', i + 1);
      if (close == std::string_view::npos) {
        error = "unterminated phrase: a '\"' at position " + std::to_string(i + 1) +
                " has no closing quote";
        return false;
      }
      it->words = words_of(std::string(s.substr(i + 1, close - i - 1)));
      it->quoted = true;
      i = close + 1;
      if (it->words.empty()) {
        error = "empty phrase: put at least one word between the quotes";
        return false;
      }
    } else {
      std::string_view tok = bare();
      if (tok.size() >= 5 && (tok.substr(0, 5) == "type:" || tok.substr(0, 5) == "TYPE:" ||
                              tok.substr(0, 5) == "Type:")) {
        it->kind = Item::Kind::kType;
        it->type = std::string(tok.substr(5));
        if (it->type.empty()) {
          error = "type: needs an event type, e.g. type:agent.tool_use";
          return false;
        }
        for (char c : it->type) {
          if (!valid_type_char(c)) {
            error = "invalid event type in type:" + it->type;
            return false;
          }
        }
        return true;
      }
      it->words = words_of(std::string(tok));
      if (it->words.empty()) *skip = true;
    }
    terms += it->words.size();
    return true;
  }
};

// The index term of one unquoted word: its Z stem, or the word itself when it gets no stem.
std::string word_term(const std::string& w) {
  if (!gets_stemmed(w)) return w;
  return std::string(kPrefixStem) + search_stemmer()(w);
}

// The (term, bonus) of a single-word item: its index term (the quoted word, or word_term) and
// the exact form whose weight a stemmed, not excluded word adds as a bonus (else empty).
std::pair<std::string, std::string> word_leaf(const Item& it) {
  const std::string& w = it.words[0];
  bool bonus = !it.quoted && gets_stemmed(w) && !it.negated;
  return {it.quoted ? w : word_term(w), bonus ? w : std::string()};
}

// `leaf` null: plain term leaves, and each stemmed word's exact form goes to `exact` (for the
// OP_AND_MAYBE bonus); otherwise the leaf gets the exact form, and phrases go to `phrase`. An
// excluded item gets no bonus.
Xapian::Query text_query(const Item& it, const ParsedQuery::Leaf* leaf,
                         const ParsedQuery::PhraseLeaf* phrase, std::vector<std::string>* exact) {
  if (it.words.size() == 1) {
    auto [term, bonus] = word_leaf(it);
    if (leaf) return (*leaf)(term, bonus);
    if (!bonus.empty() && exact) exact->push_back(bonus);
    return Xapian::Query(term);
  }
  if (phrase) return (*phrase)(it.words);
  return Xapian::Query(Xapian::Query::OP_PHRASE, it.words.begin(), it.words.end(),
                       static_cast<Xapian::termcount>(it.words.size()));
}

// The query of a plan; `leaf` and `phrase` as for text_query.
Xapian::Query assemble(const std::vector<std::vector<Item>>& clauses,
                       const ParsedQuery::Leaf* leaf, const ParsedQuery::PhraseLeaf* phrase);

bool same_item(const Item& a, const Item& b) {
  return a.kind == b.kind && a.negated == b.negated && a.words == b.words &&
         a.quoted == b.quoted && a.type == b.type;
}

}  // namespace

// Clauses are AND-ed; each clause is an OR group of items.
struct QueryPlan {
  std::vector<std::vector<Item>> clauses;
};

Xapian::Query ParsedQuery::build(const Leaf& leaf, const PhraseLeaf& phrase) const {
  if (!plan) return Xapian::Query();  // not parsed: matches nothing
  return assemble(plan->clauses, &leaf, &phrase);
}

std::vector<std::string> ParsedQuery::snippet_terms() const {
  std::vector<std::string> out;
  if (!plan) return out;
  for (const auto& c : plan->clauses) {
    for (const auto& it : c) {
      if (it.kind != Item::Kind::kText || it.negated) continue;
      if (it.words.size() == 1) {
        auto [term, bonus] = word_leaf(it);
        out.push_back(std::move(term));
        if (!bonus.empty()) out.push_back(std::move(bonus));
      } else {
        out.insert(out.end(), it.words.begin(), it.words.end());
      }
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParsedQuery::conjunction() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (!plan) return out;
  for (const auto& c : plan->clauses) {
    const Item& it = c.front();
    if (c.size() != 1 || it.kind != Item::Kind::kText || it.negated || it.words.size() != 1) {
      return {};
    }
    out.push_back(word_leaf(it));  // as text_query() gives them to a leaf
  }
  return out;
}

namespace {

Xapian::Query assemble(const std::vector<std::vector<Item>>& clauses,
                       const ParsedQuery::Leaf* leaf, const ParsedQuery::PhraseLeaf* phrase) {
  std::vector<Xapian::Query> must, must_not, types, not_types;
  std::vector<std::string> exact;
  for (const auto& c : clauses) {
    const Item& first = c.front();
    if (first.kind == Item::Kind::kType) {
      for (const auto& it : c) {
        (first.negated ? not_types : types)
            .push_back(Xapian::Query(std::string(kPrefixType) + it.type));
      }
      continue;
    }
    if (first.negated) {
      must_not.push_back(text_query(first, leaf, phrase, nullptr));
      continue;
    }
    if (c.size() == 1) {
      must.push_back(text_query(first, leaf, phrase, &exact));
    } else {
      std::vector<Xapian::Query> alts;
      for (const auto& it : c) alts.push_back(text_query(it, leaf, phrase, &exact));
      must.push_back(Xapian::Query(Xapian::Query::OP_OR, alts.begin(), alts.end()));
    }
  }
  Xapian::Query q(Xapian::Query::OP_AND, must.begin(), must.end());
  if (!exact.empty()) {
    Xapian::Query bonus(Xapian::Query::OP_OR, exact.begin(), exact.end());
    q = Xapian::Query(Xapian::Query::OP_AND_MAYBE, q,
                      Xapian::Query(Xapian::Query::OP_SCALE_WEIGHT, bonus, kExactFormBonus));
  }
  if (!types.empty()) {
    q = Xapian::Query(Xapian::Query::OP_FILTER, q,
                      Xapian::Query(Xapian::Query::OP_OR, types.begin(), types.end()));
  }
  std::vector<Xapian::Query> excluded = must_not;
  excluded.insert(excluded.end(), not_types.begin(), not_types.end());
  if (!excluded.empty()) {
    q = Xapian::Query(Xapian::Query::OP_AND_NOT, q,
                      Xapian::Query(Xapian::Query::OP_OR, excluded.begin(), excluded.end()));
  }
  return q;
}

}  // namespace

const Xapian::Stem& search_stemmer() {
  // Xapian objects are not thread-safe (stemmer state, reference counts): one per thread.
  thread_local const Xapian::Stem stem("english");
  return stem;
}

Status parse_query_unchecked(std::string_view text, ParsedQuery* out);

Status parse_search_query(std::string_view text, ParsedQuery* out) {
  try {
    return parse_query_unchecked(text, out);
  } catch (const Xapian::Error& e) {
    return Status::invalid("cannot parse query: " + e.get_msg());
  }
}

Status parse_query_unchecked(std::string_view text, ParsedQuery* out) {
  if (text.size() > kMaxQueryBytes) {
    return Status::invalid("query is longer than " + std::to_string(kMaxQueryBytes) + " bytes");
  }
  Parser p;
  p.s = text;
  std::vector<std::vector<Item>> clauses;  // see QueryPlan
  bool pending_or = false;
  bool pending_not = false;
  for (;;) {
    p.skip_space();
    if (p.i >= text.size()) break;
    size_t start = p.i;
    bool neg = false;
    if (text[p.i] == '-') {
      ++p.i;
      if (p.i >= text.size() || text[p.i] == ' ' || text[p.i] == '\t' || text[p.i] == '\n' ||
          text[p.i] == '\r') {
        return Status::invalid("'-' must be directly followed by the term to exclude, e.g. -draft");
      }
      neg = true;
    } else if (text[p.i] != '"') {
      size_t save = p.i;
      std::string_view tok = p.bare();
      if (tok == "OR") {
        if (clauses.empty() || pending_or || pending_not) {
          return Status::invalid("OR needs a term on each side");
        }
        pending_or = true;
        continue;
      }
      if (tok == "AND") {
        if (clauses.empty() || pending_or || pending_not) {
          return Status::invalid("AND needs a term on each side");
        }
        continue;
      }
      if (tok == "NOT") {
        if (pending_not) return Status::invalid("NOT NOT is not allowed");
        pending_not = true;
        continue;
      }
      p.i = save;
    }
    if (pending_not) {
      if (neg) return Status::invalid("NOT -term is not allowed");
      neg = true;
      pending_not = false;
    }
    Item it;
    it.negated = neg;
    bool skip = false;
    if (!p.item(&it, &skip)) return Status::invalid(p.error);
    if (p.terms > kMaxQueryTerms) {
      return Status::invalid("query has more than " + std::to_string(kMaxQueryTerms) + " terms");
    }
    if (skip) {
      if (pending_or) continue;  // "a OR !!! b": the punctuation is not a term
      continue;
    }
    (void)start;
    if (pending_or) {
      if (neg || clauses.back().front().negated) {
        return Status::invalid("an excluded term (-term) cannot be part of an OR");
      }
      if ((it.kind == Item::Kind::kType) != (clauses.back().front().kind == Item::Kind::kType)) {
        return Status::invalid("type: cannot be OR-ed with a search term");
      }
      clauses.back().push_back(std::move(it));
      pending_or = false;
    } else {
      clauses.push_back({std::move(it)});
    }
  }
  if (pending_or) return Status::invalid("OR needs a term on each side");
  if (pending_not) return Status::invalid("NOT must be followed by the term to exclude");
  if (clauses.empty()) return Status::invalid("q must contain at least one search word");

  bool ranked = false;
  for (const auto& c : clauses) {
    if (c.front().kind == Item::Kind::kText && !c.front().negated) ranked = true;
  }
  if (!ranked) {
    return Status::invalid("q needs at least one search word that is not excluded "
                           "(type: and -term only filter)");
  }
  // A clause repeated word for word adds nothing ("error error" is "error").
  auto plan = std::make_shared<QueryPlan>();
  for (auto& c : clauses) {
    bool repeat = c.size() == 1 && std::any_of(plan->clauses.begin(), plan->clauses.end(),
                                               [&](const std::vector<Item>& d) {
                                                 return d.size() == 1 && same_item(d[0], c[0]);
                                               });
    if (!repeat) plan->clauses.push_back(std::move(c));
  }
  out->plan = std::move(plan);
  out->query = assemble(out->plan->clauses, nullptr, nullptr);
  return Status::ok();
}

}  // namespace ds
