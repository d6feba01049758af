#include "cli/status.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace drtp::cli {

namespace {

using json = nlohmann::json;

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string seconds(uint64_t ms) {
  char buf[32];
  if (ms < 60'000)
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000);
  else if (ms < 3'600'000)
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(ms / 60'000),
                  static_cast<unsigned long long>(ms / 1000 % 60));
  else
    std::snprintf(buf, sizeof buf, "%lluh%02llum",
                  static_cast<unsigned long long>(ms / 3'600'000),
                  static_cast<unsigned long long>(ms / 60'000 % 60));
  return buf;
}

std::string rtt(const json& r) {
  if (!r.is_object())
    return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f/%.2f ms", r.value("p50_us", 0) / 1000.0,
                r.value("max_us", 0) / 1000.0);
  return buf;
}

std::string str(const json& j, const char* key, const char* none = "-") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(none);
}

uint64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

/// Columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i)
        w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  std::string out;
  for (auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i)
      line += r[i] + (i + 1 < r.size() ? std::string(w[i] - r[i].size() + 2, ' ') : "");
    out += line + "\n";
  }
  return out;
}

std::string path_line(const json& s) {
  auto& hops = s["hops"];
  if (!hops.is_array() || hops.size() < 2)
    return "";
  std::string out;
  for (auto& h : hops) {
    if (!out.empty())
      out += " -> ";
    out += str(h, "pop") + " at " + seconds(num(h, "at_ms"));
    if (num(h, "stall_ms") > 0)
      out += " (after " + seconds(num(h, "stall_ms")) + " without a path)";
  }
  return out;
}

} // namespace

std::string render_status(const std::string& text, bool wide) {
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    throw std::runtime_error("the endpoint's /debug/sessions is not a JSON object");
  std::string out;
  auto role = str(doc, "role", "?");
  if (role == "pop") {
    out += std::string("drtp-pop") + (doc.value("draining", false) ? " (draining)" : "") + "\n";
    std::vector<std::vector<std::string>> rows{{"SERVICE", "PUBLIC PORT", "AGENT TUNNELS",
                                                "CLIENTS", "PUBLIC SESSIONS"}};
    for (auto& s : doc.value("services", json::array())) {
      std::string agents;
      for (auto& t : s.value("tunnels", json::array()))
        agents += (agents.empty() ? "" : ", ") + str(t, "agent") + " ("
                  + std::to_string(num(t, "streams")) + " streams)";
      rows.push_back({str(s, "service"),
                      s["public_port"].is_number() ? std::to_string(num(s, "public_port")) : "-",
                      agents.empty() ? "-" : agents, std::to_string(num(s, "clients")),
                      std::to_string(num(s, "public_sessions"))});
    }
    out += table(rows);
  } else {
    out += std::string(role == "client" ? "drtp connect" : "drtp serve") + " for service '"
           + str(doc, "service") + "', " + std::to_string(num(doc, "tunnels_wanted"))
           + " tunnel(s) wanted\n";
    std::vector<std::vector<std::string>> rows{{"POP", "REGION", "STATE", "RTT", "FAILURES"}};
    for (auto& t : doc.value("tunnels", json::array())) {
      char r[32] = "-";
      if (t["rtt_us"].is_number())
        std::snprintf(r, sizeof r, "%.2f ms", num(t, "rtt_us") / 1000.0);
      rows.push_back({str(t, "pop"), str(t, "region"), str(t, "state"), r,
                      std::to_string(num(t, "failures"))});
    }
    out += table(rows);
  }
  auto sessions = doc.value("sessions", json::array());
  out += "\n" + std::to_string(sessions.size()) + " live session(s)\n";
  if (sessions.empty())
    return out;
  std::vector<std::vector<std::string>> rows{{"SESSION", "SERVICE", "PATH", "END", "POP", "AGE",
                                              "TO SERVICE", "FROM SERVICE", "RESUMES", "RESENT",
                                              "STALL", "RTT HERE p50/max", "RTT OTHER END"}};
  std::vector<std::string> paths;
  for (auto& s : sessions) {
    auto id = str(s, "id");
    if (!wide && id.size() > 12 && str(s, "path") == "patch_panel")
      id = id.substr(0, 12);
    bool pp = str(s, "path") == "patch_panel";
    auto end = str(s, "role");
    if (end == "pop" && s.contains("principal"))
      end += " (" + str(s, "principal") + " -> " + str(s, "agent") + ")";
    auto peer = s.find("peer");
    rows.push_back({id, str(s, "service"), pp ? "patch panel" : "public", end,
                    str(s, "pop", "(none)"), seconds(num(s, "age_ms")),
                    human_bytes(num(s, "to_service_bytes")),
                    human_bytes(num(s, "from_service_bytes")),
                    s.contains("resumes") ? std::to_string(num(s, "resumes")) : "-",
                    s.contains("resent_bytes") ? human_bytes(num(s, "resent_bytes")) : "-",
                    s.contains("stall_ms") ? seconds(num(s, "stall_ms")) : "-",
                    rtt(s["rtt"]),
                    peer != s.end() ? rtt((*peer)["rtt"]) + " via " + str(*peer, "pop") : "-"});
    auto p = path_line(s);
    if (!p.empty())
      paths.push_back(id + ": " + p);
  }
  out += table(rows);
  if (!paths.empty()) {
    out += "\nmoved:\n";
    for (auto& p : paths)
      out += "  " + p + "\n";
  }
  return out;
}

std::string http_get(const std::string& host_port, const std::string& target, int timeout_ms) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw std::runtime_error("--metrics " + host_port + ": expected HOST:PORT");
  auto host = host_port.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port = host_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
    throw std::runtime_error("--metrics " + host_port + ": cannot resolve the address");
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto fail = [&](const std::string& what) {
    if (fd >= 0)
      close(fd);
    throw std::runtime_error("--metrics " + host_port + ": " + what);
  };
  if (fd < 0) {
    freeaddrinfo(res);
    fail(std::strerror(errno));
  }
  int rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  auto wait_for = [&](short events) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd, events, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0)
      fail("no answer within " + std::to_string(timeout_ms) + " ms");
  };
  if (rc != 0 && errno != EINPROGRESS)
    fail(std::string("cannot connect: ") + std::strerror(errno)
         + " (is the process running with --metrics " + host_port + "?)");
  if (rc != 0) {
    wait_for(POLLOUT);
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      fail(std::string("cannot connect: ") + std::strerror(err)
           + " (is the process running with --metrics " + host_port + "?)");
  }
  auto req = "GET " + target + " HTTP/1.1\r\nHost: " + host_port
             + "\r\nConnection: close\r\n\r\n";
  for (size_t sent = 0; sent < req.size();) {
    wait_for(POLLOUT);
    auto n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0 && errno != EAGAIN)
      fail(std::string("cannot send: ") + std::strerror(errno));
    sent += n > 0 ? static_cast<size_t>(n) : 0;
  }
  std::string resp;
  char buf[65536];
  for (;;) {
    wait_for(POLLIN);
    auto n = recv(fd, buf, sizeof buf, 0);
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EAGAIN)
        continue;
      fail(std::string("cannot read: ") + std::strerror(errno));
    }
    resp.append(buf, static_cast<size_t>(n));
    if (resp.size() > status_body_bytes_max)
      fail("answer larger than " + std::to_string(status_body_bytes_max) + " bytes");
  }
  close(fd);
  fd = -1;
  auto head_end = resp.find("\r\n\r\n");
  if (resp.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos)
    fail("not an HTTP answer");
  auto status = resp.substr(9, 3);
  if (status != "200")
    fail("answered " + resp.substr(9, resp.find("\r\n") - 9) + " for " + target);
  return resp.substr(head_end + 4);
}

} // namespace drtp::cli
