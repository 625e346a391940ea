// Reading Prometheus text in tests: a plain HTTP GET over a socket, the metric families and
// sample values of an exposition, and Debian's `promtool check metrics` on it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace tandem::testing {

struct RawReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// GET `path` from 127.0.0.1:`port` (HTTP/1.0, read until the server closes; 10 s bound).
inline RawReply HttpGet(uint16_t port, const std::string& path, const std::string& method = "GET") {
  RawReply r;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return r;
  }
  const std::string req = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return r;
  }
  std::string all;
  std::array<char, 8192> buf;
  ssize_t n;
  while ((n = ::recv(fd, buf.data(), buf.size(), 0)) > 0) all.append(buf.data(), static_cast<size_t>(n));
  ::close(fd);
  if (all.rfind("HTTP/1.", 0) != 0 || all.size() < 12) return r;
  r.status = std::atoi(all.c_str() + 9);
  const size_t body = all.find("\r\n\r\n");
  if (body != std::string::npos) r.body = all.substr(body + 4);
  return r;
}

// The family names of an exposition (its "# TYPE" lines).
inline std::set<std::string> MetricFamilies(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    const std::string rest = line.substr(7);
    names.insert(rest.substr(0, rest.find(' ')));
  }
  return names;
}

// The value of the first sample whose line starts with `series` (name and, optionally, the
// start of its label set); -1 when none.
inline double SampleValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series, 0) == 0) return std::atof(line.substr(line.rfind(' ') + 1).c_str());
  }
  return -1;
}

struct PromtoolResult {
  bool available = false;
  int exit_code = -1;
  std::string problems;  // every line it printed but the colon lint, which vLLM's names share
};

// `promtool check metrics` on `text`. Prefixes like "tandem:" (as vLLM's "vllm:") draw its
// "should not contain ':'" lint; every other finding is a real problem.
inline PromtoolResult PromtoolCheck(const std::string& text, const std::string& scratch_file) {
  PromtoolResult r;
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return r;
  r.available = true;
  std::ofstream(scratch_file) << text;
  FILE* p = ::popen(("timeout 30 promtool check metrics < " + scratch_file + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("metric names should not contain ':'") == std::string::npos && !line.empty()) {
      r.problems += line + "\n";
    }
  }
  return r;
}

}  // namespace tandem::testing
