#include "common/sse.h"

namespace tandem {

std::string SseData(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  size_t pos = 0;
  for (;;) {
    const size_t end = payload.find_first_of("\r\n", pos);
    out += "data: ";
    out.append(payload.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    out += '\n';
    if (end == std::string_view::npos) break;
    pos = end + ((payload[end] == '\r' && end + 1 < payload.size() && payload[end + 1] == '\n') ? 2 : 1);
  }
  out += '\n';
  return out;
}

void SseParser::Feed(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n' && last_was_cr_) {
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = c == '\r';
    if (c == '\r' || c == '\n') {
      ProcessLine(line_);
      line_.clear();
    } else {
      line_ += c;
    }
  }
}

void SseParser::ProcessLine(std::string_view line) {
  if (line.empty()) {
    if (has_data_) events_.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field != "data") return;
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

std::vector<std::string> SseParser::TakeEvents() {
  std::vector<std::string> out = std::move(events_);
  events_.clear();
  return out;
}

}  // namespace tandem
