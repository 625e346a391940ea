#include "slo/slo_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/file_io.h"

namespace tandem {

Result<SloConfig> SloConfig::FromFile(const std::string& path) {
  auto text = ReadTextFile(path);
  if (!text.ok()) return text.status().WithContext("--slo-config");
  return FromJson(*text, "--slo-config " + path);
}

Result<SloConfig> SloConfig::FromJson(const std::string& text, const std::string& source) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  const std::string who = source + ": ";
  if (!j.is_object() || !j.contains("classes") || !j["classes"].is_array() || j["classes"].empty()) {
    return InvalidArgumentError(who + "expected {\"classes\": [{\"name\": ..., \"ttft_ms\": ..., \"tpot_ms\": ...}]}");
  }
  SloConfig config;
  for (const nlohmann::json& c : j["classes"]) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string() || c["name"].get<std::string>().empty()) {
      return InvalidArgumentError(who + "every class needs a non-empty string \"name\"");
    }
    SloClass cls;
    cls.name = c["name"].get<std::string>();
    if (config.Find(cls.name)) return InvalidArgumentError(who + "class " + cls.name + " is defined twice");
    for (const auto& [field, target] : {std::pair{"ttft_ms", &cls.ttft_ms}, std::pair{"tpot_ms", &cls.tpot_ms}}) {
      if (!c.contains(field)) continue;
      if (!c[field].is_number() || !(c[field].get<double>() > 0) || !std::isfinite(c[field].get<double>())) {
        return InvalidArgumentError(who + "class " + cls.name + ": " + field + " must be a positive number");
      }
      *target = c[field].get<double>();
    }
    if (cls.ttft_ms <= 0 && cls.tpot_ms <= 0) {
      return InvalidArgumentError(who + "class " + cls.name + " has neither ttft_ms nor tpot_ms");
    }
    if (c.contains("priority")) {
      if (!c["priority"].is_number_integer()) {
        return InvalidArgumentError(who + "class " + cls.name + ": priority must be an integer");
      }
      cls.priority = c["priority"].get<int32_t>();
    }
    if (c.contains("max_queued")) {
      const nlohmann::json& m = c["max_queued"];
      if (!m.is_number_integer() || m.get<int64_t>() < 0 || m.get<int64_t>() > kMaxClassQueued) {
        return InvalidArgumentError(who + "class " + cls.name + ": max_queued must be an integer in [0, " +
                                    std::to_string(kMaxClassQueued) + "]");
      }
      cls.max_queued = m.get<int32_t>();
    }
    if (c.contains("default")) {
      if (!c["default"].is_boolean())
        return InvalidArgumentError(who + "class " + cls.name + ": default must be true or false");
      if (c["default"].get<bool>()) {
        if (config.default_ >= 0) return InvalidArgumentError(who + "more than one class is marked default");
        config.default_ = static_cast<int>(config.classes_.size());
      }
    }
    config.classes_.push_back(std::move(cls));
  }
  return config;
}

const SloClass* SloConfig::Find(const std::string& name) const {
  for (const SloClass& c : classes_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string SloConfig::Names() const {
  std::string names;
  for (const SloClass& c : classes_) names += (names.empty() ? "" : ", ") + c.name;
  return names;
}

}  // namespace tandem
