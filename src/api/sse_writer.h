// Formatting of Durable Streams SSE events (§5.8): `event: data` carrying a batch of messages
// (a JSON array for JSON streams, text lines for text/*, base64 for everything else), each
// followed by `event: control` with the resume offset and flags.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/message_batch.h"

namespace ds {

enum class SseEncoding { kJson, kText, kBase64 };

// Appends an `event: data` event holding `messages` to *out.
void append_sse_data(SseEncoding enc, const std::vector<std::string>& messages, std::string* out);
void append_sse_data(SseEncoding enc, const MessageBatch& messages, std::string* out);

// Appends an `event: control` event. `cursor` is omitted when closed.
void append_sse_control(const std::string& next_offset, const std::optional<std::string>& cursor,
                        bool up_to_date, bool closed, std::string* out);

std::string base64_encode(std::string_view in);

}  // namespace ds
