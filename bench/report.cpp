// The benchmark's three outputs: a table for people, JSON for machines, SVG for a glance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "bench.hpp"

namespace entity::bench {
namespace {

const run_result* find(const report& r, const std::string& w, const std::string& v) {
  for (const auto& x : r.results)
    if (x.workload == w && x.variant == v) return &x;
  return nullptr;
}

// A _ttl workload's time per op as a multiple of its plain workload's, in the same variant and
// run (`p50`: the median op's latency instead, which the rare slow op, a checkpoint or a
// preempted thread, does not move); 0 when either is missing.
double vs_plain(const report& r, const run_result& x, bool p50 = false) {
  const std::string plain = plain_workload_of(x.workload);
  if (plain == x.workload) return 0;
  const run_result* p = find(r, plain, x.variant);
  if (!p) return 0;
  if (p50) return p->p50_us > 0 ? x.p50_us / p->p50_us : 0;
  return x.ops_per_sec > 0 ? p->ops_per_sec / x.ops_per_sec : 0;
}

std::vector<std::string> present(const report& r, bool workloads) {
  std::vector<std::string> out;
  for (const auto& name : workloads ? workload_names() : variant_names(r.postgres))
    for (const auto& x : r.results)
      if ((workloads ? x.workload : x.variant) == name) {
        out.push_back(name);
        break;
      }
  return out;
}

std::string human(double v) {
  char buf[32];
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string format_table(const report& r) {
  auto workloads = present(r, true);
  auto variants = present(r, false);
  std::ostringstream out;
  char buf[128];
  std::snprintf(buf, sizeof buf, "%-20s", "workload (ops/s, x)");
  out << buf;
  for (const auto& v : variants) {
    std::snprintf(buf, sizeof buf, " %20s", v.c_str());
    out << buf;
  }
  out << "\n";
  for (const auto& w : workloads) {
    std::snprintf(buf, sizeof buf, "%-20s", w.c_str());
    out << buf;
    const run_result* floor = find(r, w, variant_names(r.postgres).front());
    for (const auto& v : variants) {
      const run_result* x = find(r, w, v);
      std::string cell = "-";
      if (x) {
        cell = human(x->ops_per_sec) + "/s";
        if (floor && x->ops_per_sec > 0) {
          // Time per op as a multiple of the raw C client's: 1.00x is the floor.
          char ratio[32];
          std::snprintf(ratio, sizeof ratio, " %6.2fx", floor->ops_per_sec / x->ops_per_sec);
          cell += ratio;
        }
      }
      std::snprintf(buf, sizeof buf, " %20s", cell.c_str());
      out << buf;
    }
    out << "\n";
  }
  out << "(ops/s of the median run; x = time per op / " << variant_names(r.postgres).front()
      << "'s; lower x is better)\n";
  if (find(r, "group_commit_20", "sqlite_c"))
    out << "(group_commit_20: sqlite_c commits the stores in groups of 20, each in a savepoint; "
           "sqlite_c_autocommit commits them one by one)\n";
  if (find(r, "memory_store", "sqlite_c_times"))
    out << "(sqlite_c_times: sqlite_c also writing each item's times in a side table, in the "
           "store's transaction, as entity-db keeps them)\n";
  if (std::any_of(r.results.begin(), r.results.end(),
                  [](const run_result& x) { return x.workload.rfind("memory_search_", 0) == 0; }))
    out << "(memory_search_*: searches of " << r.params.value("search_items", 0)
        << " facts, the first 10 results of each)\n";
  // Expiry: each _ttl workload against its plain one, variant by variant.
  bool ttl_header = false;
  for (const auto& w : workloads) {
    if (plain_workload_of(w) == w) continue;
    if (!ttl_header) {
      out << "\nexpiry overhead (time per op with a ttl / without, same run, and the same of the "
             "median op's latency; the floor has no expiry and does the same work in both: its "
             "figures are the noise)\n";
      ttl_header = true;
    }
    std::snprintf(buf, sizeof buf, "%-20s", w.c_str());
    out << buf;
    for (const auto& v : variants) {
      const run_result* x = find(r, w, v);
      std::string cell = "-";
      if (x && vs_plain(r, *x) > 0) {
        char ratio[32];
        std::snprintf(ratio, sizeof ratio, "%.2fx p50 %.2fx", vs_plain(r, *x),
                      vs_plain(r, *x, true));
        cell = ratio;
      }
      std::snprintf(buf, sizeof buf, " %20s", cell.c_str());
      out << buf;
    }
    out << "\n";
  }
  // The sweep: items deleted per second (the table's ops/s) and the transactions it took.
  bool sweep_header = false;
  for (const auto& v : variants) {
    const run_result* x = find(r, "memory_sweep", v);
    if (!x) continue;
    if (!sweep_header) {
      out << "\nmemory_sweep: " << x->rows
          << " expired items deleted (its ops/s: items deleted per second); transactions:";
      sweep_header = true;
    }
    out << " " << v << " " << x->transactions;
  }
  if (sweep_header) out << "\n";
  return out.str();
}

nlohmann::json to_json(const report& r) {
  nlohmann::json results = nlohmann::json::array();
  const std::string& floor_variant = variant_names(r.postgres).front();
  for (const auto& x : r.results) {
    nlohmann::json j = {{"workload", x.workload},
                        {"variant", x.variant},
                        {"ops", x.ops},
                        {"seconds", x.seconds},
                        {"ops_per_sec", x.ops_per_sec},
                        {"p50_us", x.p50_us},
                        {"p99_us", x.p99_us},
                        {"rows", x.rows}};
    // The table's x: time per op as a multiple of the floor's, when the floor ran.
    const run_result* floor = find(r, x.workload, floor_variant);
    if (floor && x.ops_per_sec > 0) j["vs_floor"] = floor->ops_per_sec / x.ops_per_sec;
    // A _ttl workload: time per op as a multiple of its plain workload's in the same variant.
    if (double ratio = vs_plain(r, x); ratio > 0) {
      j["vs_plain"] = ratio;
      j["vs_plain_p50"] = vs_plain(r, x, true);
    }
    if (x.workload == "memory_sweep") j["transactions"] = x.transactions;
    results.push_back(std::move(j));
  }
  return {{"machine", r.machine}, {"params", r.params}, {"results", results}};
}

std::string to_svg(const report& r) {
  auto workloads = present(r, true);
  auto variants = present(r, false);
  static const char* colors[] = {"#4d4d4d", "#2b83ba", "#fdae61", "#1a9641", "#d7191c", "#8c510a"};

  const int left = 80, right = 170, top = 60, bottom = 130;
  const int group_w = std::max<int>(48, static_cast<int>(variants.size()) * 12 + 12);
  const int plot_w = group_w * static_cast<int>(std::max<std::size_t>(workloads.size(), 1));
  const int plot_h = 360;
  const int width = left + plot_w + right, height = top + plot_h + bottom;

  double lo = 1e300, hi = 0;
  for (const auto& x : r.results)
    if (x.ops_per_sec > 0) lo = std::min(lo, x.ops_per_sec), hi = std::max(hi, x.ops_per_sec);
  if (hi <= 0) lo = 1, hi = 10;
  int dmin = static_cast<int>(std::floor(std::log10(lo)));
  int dmax = static_cast<int>(std::ceil(std::log10(hi)));
  if (dmax == dmin) ++dmax;
  auto y_of = [&](double v) {
    double t = (std::log10(std::max(v, std::pow(10.0, dmin))) - dmin) / (dmax - dmin);
    return top + plot_h - t * plot_h;
  };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::string title =
      std::string("entitydb bench") + (r.postgres ? " on PostgreSQL" : "") +
      ": operations per second (log scale), N=" + r.params.value("ops", nlohmann::json(0)).dump() +
      (r.params.value("durable", false) ? ", synchronous=FULL" : "");
  s << "<text x=\"" << width / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">"
    << escape_xml(title) << "</text>\n";
  // Decade grid lines and labels.
  for (int d = dmin; d <= dmax; ++d) {
    double y = y_of(std::pow(10.0, d));
    s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y << "\" y2=\"" << y
      << "\" stroke=\"#ddd\"/>\n";
    s << "<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
      << human(std::pow(10.0, d)) << "</text>\n";
  }
  s << "<text transform=\"translate(18," << top + plot_h / 2
    << ") rotate(-90)\" text-anchor=\"middle\">operations per second</text>\n";
  // Bars.
  for (std::size_t wi = 0; wi < workloads.size(); ++wi) {
    int gx = left + static_cast<int>(wi) * group_w + 6;
    for (std::size_t vi = 0; vi < variants.size(); ++vi) {
      const run_result* x = find(r, workloads[wi], variants[vi]);
      if (!x || x->ops_per_sec <= 0) continue;
      double y = y_of(x->ops_per_sec);
      s << "<rect x=\"" << gx + static_cast<int>(vi) * 12 << "\" y=\"" << y
        << "\" width=\"11\" height=\"" << top + plot_h - y << "\" fill=\"" << colors[vi % 6]
        << "\"><title>"
        << escape_xml(x->workload + " / " + x->variant + ": " + human(x->ops_per_sec) + " ops/s")
        << "</title></rect>\n";
    }
    int cx = left + static_cast<int>(wi) * group_w + group_w / 2;
    s << "<text transform=\"translate(" << cx << "," << top + plot_h + 10
      << ") rotate(40)\" text-anchor=\"start\">" << escape_xml(workloads[wi]) << "</text>\n";
  }
  s << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << top + plot_h
    << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << left << "\" x2=\"" << left << "\" y1=\"" << top << "\" y2=\""
    << top + plot_h << "\" stroke=\"black\"/>\n";
  s << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << height - 10
    << "\" text-anchor=\"middle\">workload</text>\n";
  // Legend.
  for (std::size_t vi = 0; vi < variants.size(); ++vi) {
    int ly = top + 10 + static_cast<int>(vi) * 20;
    s << "<rect x=\"" << left + plot_w + 20 << "\" y=\"" << ly
      << "\" width=\"14\" height=\"14\" fill=\"" << colors[vi % 6] << "\"/>\n";
    s << "<text x=\"" << left + plot_w + 40 << "\" y=\"" << ly + 11 << "\">"
      << escape_xml(variants[vi]) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace entity::bench
