#include "bench/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench/system.hpp"

namespace drtp::bench {

stats summarize(std::vector<double> v) {
  stats s;
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !(x > 0); }),
          v.end());
  if (v.empty())
    return s;
  std::sort(v.begin(), v.end());
  s.ok = true;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2]
                          : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

namespace {

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

std::string cell(const stats& s, const char* f, bool spread) {
  if (!s.ok)
    return "fail";
  auto out = fmt(f, s.median);
  if (spread && s.max > s.min)
    out += " (" + fmt(f, s.min) + "–" + fmt(f, s.max) + ")";
  return out;
}

/// a's median over b's, or NaN when either is missing.
double median_ratio(const stats& a, const stats& b) {
  if (!a.ok || !b.ok || b.median <= 0)
    return std::nan("");
  return a.median / b.median;
}

std::string ratio(const stats& a, const stats& b) {
  double r = median_ratio(a, b);
  return r == r ? fmt("%.2fx", r) : "–";
}

/// RSS grown per established idle session, for process `proc` of `p`.
double kib_per_session(const path& p, const idle_figure& f, size_t proc) {
  if (f.established <= 0)
    return 0;
  return (static_cast<double>(f.rss_after_kib[proc])
          - static_cast<double>(p.rss_idle_kib[proc]))
         / f.established;
}

/// The rows of the targets table: a target, this run's figure, whether it
/// is met, and the same figure for each of DRTP's shapes built from haproxy.
struct target_rows {
  size_t shapes = 0;
  std::vector<std::string> lines;

  void add(const std::string& target, const std::string& shown, bool met,
           std::vector<std::string> others = {}) {
    others.resize(shapes, "–");
    std::string r = "| " + target + " | " + shown + " | " + (met ? "yes" : "no");
    for (auto& o : others)
      r += " | " + o;
    lines.push_back(r + " |\n");
  }
};

/// DRTP's medians against haproxy's, and the shapes' beside them.
void add_haproxy_rows(target_rows& rows, const path& drtp,
                      const std::vector<const path*>& shapes, const path& hap,
                      bool conns) {
  auto vs_haproxy = [&](const char* target, std::vector<double> path::*figure,
                        double bound, bool at_least) {
    auto of = [&](const path& p) {
      return median_ratio(summarize(p.*figure), summarize(hap.*figure));
    };
    auto meets = [&](double r) { return at_least ? r >= bound : r <= bound; };
    double r = of(drtp);
    if (r != r)
      return;
    std::vector<std::string> others;
    for (auto* shape : shapes) {
      double f = of(*shape);
      others.push_back(f == f ? fmt("%.2fx", f) + (meets(f) ? " (met)" : "") : "–");
    }
    rows.add(target, fmt("%.2fx", r), meets(r), others);
  };
  vs_haproxy("1 stream >= 1.0x haproxy", &path::gbps1, 1.0, true);
  vs_haproxy("4 streams >= 0.8x haproxy", &path::gbps4, 0.8, true);
  vs_haproxy("RTT p50 <= 1.0x haproxy", &path::p50, 1.0, false);
  vs_haproxy("RTT p99 <= 1.2x haproxy", &path::p99, 1.2, false);
  if (conns)
    vs_haproxy("new conn/s >= 1.0x haproxy", &path::cps, 1.0, true);
}

/// The memory targets, from DRTP's batches of idle sessions.
void add_idle_rows(target_rows& rows, const path& drtp) {
  for (auto& f : drtp.idle) {
    if (f.established <= 0)
      continue;
    double worst_kib = 0, total_mib = 0;
    for (size_t i = 0; i < drtp.procs.size(); ++i) {
      worst_kib = std::max(worst_kib, kib_per_session(drtp, f, i));
      total_mib += f.rss_after_kib[i] / 1024.0;
    }
    rows.add("<= 16 KiB per idle session (" + std::to_string(f.established) + ")",
             fmt("%.1f KiB per side", worst_kib), worst_kib <= 16.0);
    if (f.wanted == 10000) {
      bool all = f.established == f.wanted;
      rows.add("10 000 sessions in <= 300 MiB (POP + agent)",
               fmt("%.1f MiB", total_mib)
                 + (all ? "" : " (only " + std::to_string(f.established) + " opened)"),
               all && total_mib <= 300.0);
    }
  }
}

/// The targets for the DRTP public path, each against this run's
/// medians. Figures to read, not a verdict on the code: timings never fail
/// a test.
void print_targets(const std::vector<path>& paths, const path* hap, bool conns) {
  const path* drtp = nullptr;
  // DRTP's shape built from haproxy, without and with TLS: what a target
  // asks of any design with a relay on each side.
  std::vector<const path*> shapes;
  for (auto& p : paths) {
    if (p.key == "drtp" && p.na.empty())
      drtp = &p;
    if ((p.key == "haproxy-2" || p.key == "haproxy-tls") && p.na.empty())
      shapes.push_back(&p);
  }
  if (drtp == nullptr)
    return;
  target_rows rows;
  rows.shapes = shapes.size();
  if (hap != nullptr)
    add_haproxy_rows(rows, *drtp, shapes, *hap, conns);
  add_idle_rows(rows, *drtp);
  if (rows.lines.empty())
    return; // neither haproxy nor idle sessions measured
  std::printf("\nDRTP public against its targets in this run%s:\n\n",
              hap == nullptr ? " (no haproxy measured: no ratios)" : "");
  std::string head = "| target | this run | met |";
  std::string rule = "|---|---|---|";
  for (auto* shape : shapes) {
    head += " " + shape->name + " |";
    rule += "---|";
  }
  if (!shapes.empty())
    std::printf("Beside DRTP, the same ratios for DRTP's shape built from two "
                "haproxy relays:\nwhat each target asks of any design with a "
                "relay on each side.\n\n");
  std::printf("%s\n%s\n", head.c_str(), rule.c_str());
  for (auto& r : rows.lines)
    std::fputs(r.c_str(), stdout);
}

std::string json_num(double x) {
  return x == x ? fmt("%.6g", x) : "null";
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      o += '\\';
    if (static_cast<unsigned char>(ch) < 0x20)
      o += ' ';
    else
      o += ch;
  }
  return o + "\"";
}

std::string json_stats(const stats& s) {
  if (!s.ok)
    return "null";
  return "{\"median\": " + json_num(s.median) + ", \"min\": " + json_num(s.min)
         + ", \"max\": " + json_num(s.max) + "}";
}

std::string json_list(const std::vector<double>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i)
    o += (i ? ", " : "") + json_num(v[i]);
  return o + "]";
}

/// The table of the processes that carry each path: RSS idle and with idle
/// sessions, CPU per GiB, per round trip and per new connection. Nothing
/// when no measured path has processes of its own (--paths direct).
void print_processes(const std::vector<path>& paths,
                     const std::vector<int>& sessions) {
  auto measured = [](const path& p) { return p.na.empty() && !p.procs.empty(); };
  if (std::none_of(paths.begin(), paths.end(), measured))
    return;
  std::printf("\nMemory and CPU of the processes that carry each path "
              "(RSS includes forked children; KiB/session = (RSS with N open - "
              "RSS idle) / N established):\n\n");
  std::printf("| path | process | RSS idle MiB |");
  for (int n : sessions)
    std::printf(" %d sessions: MiB, KiB/session |", n);
  std::printf(" CPU s/GiB 1 stream | CPU s/GiB 4 streams | CPU us/round trip |"
              " CPU us/new conn |\n|---|---|---|");
  for (size_t i = 0; i < sessions.size(); ++i)
    std::printf("---|");
  std::printf("---|---|---|---|\n");
  for (auto& p : paths) {
    if (!measured(p))
      continue;
    for (size_t i = 0; i < p.procs.size(); ++i) {
      std::printf("| %s | %s | %.1f |", p.name.c_str(), p.procs[i].label.c_str(),
                  p.rss_idle_kib[i] / 1024.0);
      for (size_t q = 0; q < sessions.size(); ++q) {
        if (q >= p.idle.size()) {
          std::printf(" – |");
          continue;
        }
        auto& f = p.idle[q];
        double per = kib_per_session(p, f, i);
        std::string note;
        if (f.established < f.wanted)
          note = " (only " + std::to_string(f.established) + " of "
                 + std::to_string(f.wanted) + " opened in "
                 + fmt("%.0f", f.open_s) + " s)";
        std::printf(" %.1f, %.1f%s |", f.rss_after_kib[i] / 1024.0, per,
                    note.c_str());
      }
      std::printf(" %s | %s | %s | %s |\n",
                  p.gib1 > 0 ? fmt("%.2f", p.cpu1[i] / p.gib1).c_str() : "–",
                  p.gib4 > 0 ? fmt("%.2f", p.cpu4[i] / p.gib4).c_str() : "–",
                  p.rtts > 0 ? fmt("%.1f", p.cpu_rtt[i] / p.rtts * 1e6).c_str()
                             : "–",
                  p.conns > 0 ? fmt("%.1f", p.cpu_conn[i] / p.conns * 1e6).c_str()
                              : "–");
    }
  }
}

/// The measured path with this key, or nullptr.
const path* measured(const std::vector<path>& paths, const std::string& key) {
  for (auto& p : paths)
    if (p.key == key && p.na.empty())
      return &p;
  return nullptr;
}

/// `p`'s medians over those of `direct` and haproxy, as a JSON object's body.
std::string json_ratios(const path& p, const path* direct, const path* hap) {
  std::string rels;
  auto rel = [&](const char* name, const std::vector<double>& a,
                 const std::vector<double>& b) {
    auto sa = summarize(a), sb = summarize(b);
    if (sa.ok && sb.ok && sb.median > 0)
      rels += std::string(rels.empty() ? "" : ", ") + "\"" + name
              + "\": " + json_num(sa.median / sb.median);
  };
  if (direct) {
    rel("gbps_1_vs_direct", p.gbps1, direct->gbps1);
    rel("gbps_4_vs_direct", p.gbps4, direct->gbps4);
    rel("rtt_p50_vs_direct", p.p50, direct->p50);
    rel("conn_per_s_vs_direct", p.cps, direct->cps);
  }
  if (hap) {
    rel("gbps_1_vs_haproxy", p.gbps1, hap->gbps1);
    rel("gbps_4_vs_haproxy", p.gbps4, hap->gbps4);
    rel("rtt_p50_vs_haproxy", p.p50, hap->p50);
    rel("conn_per_s_vs_haproxy", p.cps, hap->cps);
  }
  return rels;
}

/// Process `i` of `p`: its memory, CPU per unit of work and idle batches.
std::string json_process(const path& p, size_t i) {
  std::string j = "\n       {\"name\": " + json_str(p.procs[i].label)
                  + ", \"rss_idle_kib\": " + std::to_string(p.rss_idle_kib[i])
                  + ", \"cpu_s_per_gib_1\": "
                  + json_num(p.gib1 > 0 ? p.cpu1[i] / p.gib1 : 0)
                  + ", \"cpu_s_per_gib_4\": "
                  + json_num(p.gib4 > 0 ? p.cpu4[i] / p.gib4 : 0)
                  + ", \"cpu_us_per_round_trip\": "
                  + json_num(p.rtts > 0 ? p.cpu_rtt[i] / p.rtts * 1e6 : 0)
                  + ", \"cpu_us_per_new_conn\": "
                  + json_num(p.conns > 0 ? p.cpu_conn[i] / p.conns * 1e6 : 0)
                  + ", \"idle_sessions\": [";
  for (size_t q = 0; q < p.idle.size(); ++q) {
    auto& f = p.idle[q];
    double per = kib_per_session(p, f, i);
    j += std::string(q ? ", " : "") + "{\"wanted\": " + std::to_string(f.wanted)
         + ", \"established\": " + std::to_string(f.established)
         + ", \"failed\": " + std::to_string(f.failed)
         + ", \"open_s\": " + json_num(f.open_s)
         + ", \"rss_before_kib\": " + std::to_string(f.rss_before_kib[i])
         + ", \"rss_kib\": " + std::to_string(f.rss_after_kib[i])
         + ", \"kib_per_session\": " + json_num(per) + "}";
  }
  return j + "]}";
}

std::string json_path(const path& p, const path* direct, const path* hap) {
  std::string j = "    {\"key\": " + json_str(p.key) + ", \"name\": " + json_str(p.name);
  if (!p.na.empty())
    return j + ", \"na\": " + json_str(p.na) + "}";
  j += ", \"port\": " + std::to_string(p.port);
  j += ",\n     \"gbps_1\": " + json_stats(summarize(p.gbps1))
       + ", \"gbps_1_runs\": " + json_list(p.gbps1);
  j += ",\n     \"gbps_4\": " + json_stats(summarize(p.gbps4))
       + ", \"gbps_4_runs\": " + json_list(p.gbps4);
  j += ",\n     \"rtt_p50_us\": " + json_stats(summarize(p.p50))
       + ", \"rtt_p99_us\": " + json_stats(summarize(p.p99))
       + ", \"rtt_p999_us\": " + json_stats(summarize(p.p999));
  j += ",\n     \"conn_per_s\": " + json_stats(summarize(p.cps))
       + ", \"conn_per_s_runs\": " + json_list(p.cps)
       + ", \"conn_failed\": " + std::to_string(p.conn_failed);
  j += ",\n     \"ratios\": {" + json_ratios(p, direct, hap) + "}";
  j += ",\n     \"processes\": [";
  for (size_t i = 0; i < p.procs.size(); ++i)
    j += std::string(i ? ", " : "") + json_process(p, i);
  return j + "]}";
}

} // namespace

void print_figures(const std::vector<path>& paths, const run_options& o,
                   double total_s) {
  const path* direct = measured(paths, "direct");
  const path* hap = measured(paths, "haproxy");
  auto S = [](const std::vector<double>& v) { return summarize(v); };
  std::printf("\n%d run(s) in %.0f s; %.0f MiB per throughput run (4 streams: "
              "%.0f MiB each); %d round trips of 64 B; new connections: 32 "
              "threads for %.1f s\n\n",
              o.runs, total_s, o.bytes / 1048576.0, o.bytes / 4 / 1048576.0,
              o.rounds, o.conn_s);
  std::printf("| path | 1 stream Gb/s | 4 streams Gb/s | RTT p50 us | p99 us | "
              "p999 us | new conn/s | 1 st. / direct | 1 st. / haproxy | "
              "p50 / haproxy | conn/s / haproxy |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (auto& p : paths) {
    if (!p.na.empty()) {
      std::printf("| %s | n/a (%s) |||||||||| \n", p.name.c_str(), p.na.c_str());
      continue;
    }
    auto g1 = S(p.gbps1), g4 = S(p.gbps4), l50 = S(p.p50), l99 = S(p.p99),
         l999 = S(p.p999), c = S(p.cps);
    std::string cps = o.conn_s > 0 ? cell(c, "%.0f", true) : "–";
    if (p.conn_failed)
      cps += " [" + std::to_string(p.conn_failed) + " failed]";
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                p.name.c_str(), cell(g1, "%.2f", true).c_str(),
                cell(g4, "%.2f", true).c_str(), cell(l50, "%.0f", true).c_str(),
                cell(l99, "%.0f", false).c_str(), cell(l999, "%.0f", false).c_str(),
                cps.c_str(), direct ? ratio(g1, S(direct->gbps1)).c_str() : "–",
                hap ? ratio(g1, S(hap->gbps1)).c_str() : "–",
                hap ? ratio(l50, S(hap->p50)).c_str() : "–",
                hap && o.conn_s > 0 ? ratio(c, S(hap->cps)).c_str() : "–");
  }
  print_processes(paths, o.sessions);
  print_targets(paths, hap, o.conn_s > 0);
}

void write_json(const std::string& file, const std::vector<path>& paths,
                const run_options& o, double total_s) {
  const path* direct = measured(paths, "direct");
  const path* hap = measured(paths, "haproxy");
  std::string j = "{\n  \"runs\": " + std::to_string(o.runs)
                  + ", \"bytes\": " + std::to_string(o.bytes)
                  + ", \"rounds\": " + std::to_string(o.rounds)
                  + ", \"conn_seconds\": " + json_num(o.conn_s)
                  + ", \"conn_threads\": 32, \"seconds\": " + json_num(total_s)
                  + ",\n  \"paths\": [\n";
  for (size_t k = 0; k < paths.size(); ++k)
    j += json_path(paths[k], direct, hap) + (k + 1 < paths.size() ? ",\n" : "\n");
  j += "  ]\n}\n";
  std::fflush(stdout); // the tables first, when both go to one file
  if (!write_text(file, j))
    std::fprintf(stderr, "drtp-bench: cannot write %s\n", file.c_str());
  else
    std::fprintf(stderr, "drtp-bench: figures written to %s\n", file.c_str());
}

} // namespace drtp::bench
