#include "loadgen/trace_formats.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

namespace tandem::loadgen {

namespace {

constexpr int64_t kMaxTokens = int64_t{1} << 30;

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    fields.push_back(Trim(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return fields;
}

// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

Result<int32_t> Length(const nlohmann::json& v, const std::string& where, const char* field) {
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxTokens) {
    return InvalidArgumentError(where + ": \"" + field + "\" must be a positive integer");
  }
  return static_cast<int32_t>(v.get<int64_t>());
}

Result<int32_t> Length(const std::string& text, const std::string& where, const char* field) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size() && v >= 1 && v <= kMaxTokens) return static_cast<int32_t>(v);
  } catch (const std::exception&) {
  }
  return InvalidArgumentError(where + ": " + field + " '" + text + "' must be a positive integer");
}

Result<TraceRow> JsonRow(const std::string& line, const std::string& where) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError(where + ": not a JSON object");
  for (const char* field : {"timestamp", "input_length", "output_length"}) {
    if (!j.contains(field)) return InvalidArgumentError(where + ": no \"" + std::string(field) + "\"");
  }
  TraceRow row;
  if (!j["timestamp"].is_number() || !(j["timestamp"].get<double>() >= 0)) {
    return InvalidArgumentError(where + ": \"timestamp\" must be a non-negative number of milliseconds");
  }
  row.timestamp_ms = j["timestamp"].get<double>();
  auto in = Length(j["input_length"], where, "input_length");
  if (!in.ok()) return in.status();
  auto out = Length(j["output_length"], where, "output_length");
  if (!out.ok()) return out.status();
  row.input_length = *in;
  row.output_length = *out;
  if (j.contains("hash_ids")) {
    const nlohmann::json& h = j["hash_ids"];
    if (!h.is_array() || !std::all_of(h.begin(), h.end(), [](const auto& v) { return v.is_number_integer(); })) {
      return InvalidArgumentError(where + ": \"hash_ids\" must be an array of integers");
    }
    row.hash_ids = h.get<std::vector<int64_t>>();
  }
  if (j.contains("slo_class")) {
    if (!j["slo_class"].is_string()) return InvalidArgumentError(where + ": \"slo_class\" must be a string");
    row.slo_class = j["slo_class"];
  }
  return row;
}

Result<double> Timestamp(const std::string& text, const std::string& where) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) {
      if (v >= 0 && std::isfinite(v)) return v;
      return InvalidArgumentError(where + ": TIMESTAMP must not be negative");
    }
  } catch (const std::exception&) {
  }
  auto ms = ParseDateTimeMs(text);
  if (!ms.ok()) return InvalidArgumentError(where + ": " + ms.status().message());
  return *ms;
}

}  // namespace

Result<double> ParseDateTimeMs(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  char sep = 0;
  int consumed = 0;
  double sec = 0;
  const int n = std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d:%lf%n", &y, &mo, &d, &sep, &h, &mi, &sec, &consumed);
  const bool ok = n >= 7 && (sep == ' ' || sep == 'T') && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h >= 0 &&
                  h < 24 && mi >= 0 && mi < 60 && sec >= 0 && sec < 61;
  std::string rest = ok ? text.substr(static_cast<size_t>(consumed)) : "";
  if (!ok || !(rest.empty() || rest == "Z" || rest == "+00:00")) {
    return InvalidArgumentError("TIMESTAMP '" + text + "' is neither milliseconds nor YYYY-MM-DD HH:MM:SS[.frac]");
  }
  const int64_t days = DaysFromCivil(y, mo, d);
  return (static_cast<double>(days) * 86400.0 + h * 3600.0 + mi * 60.0 + sec) * 1000.0;
}

Result<std::vector<TraceRow>> ReadTraceFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("trace " + path + ": cannot open");
  std::vector<TraceRow> rows;
  std::string line;
  int64_t line_no = 0;
  bool csv = false;
  bool decided = false;
  size_t col_ts = 0, col_in = 0, col_out = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string trimmed = Trim(line);
    if (trimmed.empty()) continue;
    const std::string where = "trace " + path + ":" + std::to_string(line_no);
    if (!decided) {
      decided = true;
      csv = trimmed.front() != '{';
      if (csv) {
        const std::vector<std::string> header = SplitCsv(trimmed);
        auto find = [&](const std::string& name, size_t* col) {
          for (size_t i = 0; i < header.size(); ++i) {
            if (Lower(header[i]) == Lower(name)) {
              *col = i;
              return true;
            }
          }
          return false;
        };
        if (!find("TIMESTAMP", &col_ts) || !find("ContextTokens", &col_in) || !find("GeneratedTokens", &col_out)) {
          return InvalidArgumentError(where +
                                      ": neither a JSON line nor a CSV header naming TIMESTAMP, "
                                      "ContextTokens and GeneratedTokens");
        }
        continue;
      }
    }
    if (!csv) {
      auto row = JsonRow(trimmed, where);
      if (!row.ok()) return row.status();
      rows.push_back(std::move(*row));
      continue;
    }
    const std::vector<std::string> f = SplitCsv(trimmed);
    if (f.size() <= std::max({col_ts, col_in, col_out})) return InvalidArgumentError(where + ": too few columns");
    TraceRow row;
    auto ts = Timestamp(f[col_ts], where);
    if (!ts.ok()) return ts.status();
    auto input = Length(f[col_in], where, "ContextTokens");
    if (!input.ok()) return input.status();
    auto output = Length(f[col_out], where, "GeneratedTokens");
    if (!output.ok()) return output.status();
    row.timestamp_ms = *ts;
    row.input_length = *input;
    row.output_length = *output;
    rows.push_back(std::move(row));
  }
  if (in.bad()) return InternalError("trace " + path + ": read error");
  if (rows.empty()) return InvalidArgumentError("trace " + path + ": no request in it");
  return rows;
}

}  // namespace tandem::loadgen
