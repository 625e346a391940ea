#include "loadgen/response_stream.h"

#include <nlohmann/json.hpp>

namespace tandem::loadgen {

void ResponseStream::Feed(std::string_view bytes, double now_s) {
  sse_.Feed(bytes);
  for (const std::string& e : sse_.TakeEvents()) OnEvent(e, now_s);
}

void ResponseStream::OnEvent(const std::string& data, double now_s) {
  if (done_ || !error_.empty()) return;
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error_ = "an event that is not a JSON object: " + data.substr(0, 80);
    return;
  }
  if (j.contains("error")) {
    const nlohmann::json& e = j["error"];
    std::string message =
        e.is_object() && e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : e.dump();
    error_ = "error event: " + message;
    return;
  }
  last_event_s_ = now_s;
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    last_choice_s_ = now_s;
    const nlohmann::json& c = j["choices"][0];
    const nlohmann::json* text = nullptr;
    if (chat_ && c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content")) {
      text = &c["delta"]["content"];
    } else if (!chat_ && c.contains("text")) {
      text = &c["text"];
    }
    const std::string piece = text && text->is_string() ? text->get<std::string>() : "";
    const bool finish_only = piece.empty() && c.contains("finish_reason") && !c["finish_reason"].is_null();
    if (!finish_only) chunk_s_.push_back(now_s);
    text_ += piece;
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    const nlohmann::json& u = j["usage"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
      completion_tokens_ = u["completion_tokens"].get<int32_t>();
    }
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) {
      prompt_tokens_ = u["prompt_tokens"].get<int32_t>();
    }
    const auto details = u.find("prompt_tokens_details");
    if (details != u.end() && details->is_object() && details->contains("cached_tokens") &&
        (*details)["cached_tokens"].is_number_integer()) {
      cached_tokens_ = (*details)["cached_tokens"].get<int32_t>();
    }
  }
}

void ResponseStream::Finish(RequestResult* r) const {
  r->chunk_s = chunk_s_;
  r->generated_text = text_;
  r->cached_tokens = cached_tokens_;
  r->output_tokens = completion_tokens_ >= 0 ? completion_tokens_ : static_cast<int32_t>(chunk_s_.size());
  if (r->prompt_len <= 0 && prompt_tokens_ > 0) r->prompt_len = prompt_tokens_;
  r->ttft_s = chunk_s_.empty() ? -1 : chunk_s_.front();
  if (!error_.empty()) {
    r->success = false;
    r->error = error_;
  } else if (!done_) {
    r->success = false;
    r->error = chunk_s_.empty() ? "the stream ended before any chunk" : "the stream ended before [DONE]";
  } else if (chunk_s_.empty()) {
    r->success = false;
    r->error = "no chunk with choices before [DONE]";
  } else {
    r->success = true;
  }
  if (r->success) r->latency_s = chat_ ? last_event_s_ : last_choice_s_;
}

}  // namespace tandem::loadgen
