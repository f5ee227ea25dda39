// Compact encoding of a recipient's merge values for the recipients.fields BLOB column.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sb {

// Each value is a LEB128 varint length followed by its bytes, in field order. One BLOB per
// row keeps the recipients table narrow and the column set independent of the CSV header.
void encode_fields(const std::string* values, size_t n, std::string& out);
// Appends one value to an encoding being built (what encode_fields does per value).
void append_field(std::string& out, std::string_view value);

// Decodes into out (resized to `count`; values missing from a short blob are empty).
// Returns false when the blob is malformed (truncated length or bytes).
bool decode_fields(std::string_view blob, size_t count, std::vector<std::string>& out);

}  // namespace sb
