// make_snippet: a short, HTML-safe excerpt of an event's text around its best match.
//
// Guarantees: the excerpt is at most about `length` bytes of `text` (cut at word boundaries, or
// at a UTF-8 character boundary where there is no word to cut at), everything HTML-escaped (`<`,
// `>`, `&`), each word that matches the query wrapped in <mark>…</mark>, and `…` where text was
// cut. A word matches when its exact lower-cased form or its "Z" stem is a key of `weights`
// (the words and stems as the index holds them: text_tokenizer.h). The excerpt is the window of
// `length` bytes whose matching words weigh the most (callers give rarer words more weight), then
// widened to use the whole length; a text without matches gives its beginning. Valid UTF-8 in,
// valid UTF-8 out.
//
// Threads: any thread (each has its own tokenizer).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ds {

inline constexpr size_t kSnippetBytes = 240;

std::string make_snippet(std::string_view text,
                         const std::unordered_map<std::string, double>& weights,
                         size_t length = kSnippetBytes);

}  // namespace ds
