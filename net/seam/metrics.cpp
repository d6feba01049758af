#include "net/seam/metrics.hpp"

#include <cinttypes>
#include <cstdio>

#include "net/seam/assert.hpp"

namespace drtp::net {

void metric_histogram::observe_us(uint64_t us) {
  size_t i = 0;
  while (i < bounds_us.size() && us > bounds_us[i])
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(us, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

metrics::metrics() : families_(static_cast<size_t>(metric::count_)) {
  DRTP_ASSERT(metric_catalog().size() == families_.size(),
              "the catalogue describes every metric family");
  for (size_t i = 0; i < families_.size(); ++i)
    DRTP_ASSERT(static_cast<size_t>(metric_catalog()[i].id) == i,
                "the catalogue lists the families in id order");
}

metrics::child& metrics::find(metric id, metric_kind kind,
                              const std::vector<std::string>& values) {
  auto index = static_cast<size_t>(id);
  DRTP_ASSERT(index < families_.size(), "a metric id from the catalogue");
  const auto& spec = metric_catalog()[index];
  DRTP_ASSERT(spec.kind == kind, "a metric used as the kind it is declared");
  DRTP_ASSERT(spec.labels.size() == values.size(),
              "a value for every label of the family");
  std::vector<std::string> key;
  key.reserve(values.size());
  for (const auto& v : values)
    key.push_back(v.size() > label_value_bytes_max
                    ? v.substr(0, label_value_bytes_max)
                    : v);
  bool overflowed = false;
  child* found = nullptr;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    auto& fam = families_[index];
    auto i = fam.children.find(key);
    if (i == fam.children.end() && !key.empty()
        && fam.children.size() >= label_sets_per_family_max) {
      key.assign(values.size(), "_overflow");
      i = fam.children.find(key);
      overflowed = true;
    }
    if (i == fam.children.end()) {
      auto c = std::make_unique<child>();
      c->values = key;
      i = fam.children.emplace(key, std::move(c)).first;
    }
    found = i->second.get();
  }
  if (overflowed)
    counter(metric::metric_label_sets_overflow_total).add();
  return *found;
}

metric_counter& metrics::counter(metric id,
                                 const std::vector<std::string>& values) {
  return find(id, metric_kind::counter, values).c;
}

metric_gauge& metrics::gauge(metric id, const std::vector<std::string>& values) {
  return find(id, metric_kind::gauge, values).g;
}

metric_histogram& metrics::histogram(metric id,
                                     const std::vector<std::string>& values) {
  return find(id, metric_kind::histogram, values).h;
}

void metrics::set_refresh(std::function<void(metrics&)> refresh) {
  std::lock_guard<std::mutex> guard{mutex_};
  refresh_ = std::move(refresh);
}

void metrics::set_collector(std::function<void(std::string&)> collect) {
  std::lock_guard<std::mutex> guard{mutex_};
  collect_ = std::move(collect);
}

int64_t metrics::peek(metric id, const std::vector<std::string>& values) const {
  auto index = static_cast<size_t>(id);
  DRTP_ASSERT(index < families_.size(), "a metric id from the catalogue");
  std::lock_guard<std::mutex> guard{mutex_};
  const auto& fam = families_[index];
  auto i = fam.children.find(values);
  if (i == fam.children.end())
    return -1;
  if (metric_catalog()[index].kind == metric_kind::gauge)
    return i->second->g.value();
  if (metric_catalog()[index].kind == metric_kind::histogram)
    return static_cast<int64_t>(i->second->h.count());
  return static_cast<int64_t>(i->second->c.value());
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    if (ch == '\\')
      out += "\\\\";
    else if (ch == '"')
      out += "\\\"";
    else if (ch == '\n')
      out += "\\n";
    else
      out += ch;
  }
  return out;
}

namespace {

const char* kind_name(metric_kind k) {
  switch (k) {
    case metric_kind::counter:
      return "counter";
    case metric_kind::gauge:
      return "gauge";
    case metric_kind::histogram:
      return "histogram";
  }
  return "untyped";
}

/// `{a="x",b="y"` without the closing brace (so that `le` can follow), or
/// empty when there are no labels and no `le`.
void append_labels(std::string& out, const metric_spec& spec,
                   const std::vector<std::string>& values, const char* le) {
  if (values.empty() && le == nullptr)
    return;
  out += '{';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out += ',';
    out += spec.labels[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (le != nullptr) {
    if (!values.empty())
      out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

std::string seconds_text(uint64_t us) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%" PRIu64 ".%06" PRIu64, us / 1000000,
                us % 1000000);
  return buf;
}

} // namespace

std::string metrics::render() {
  std::function<void(metrics&)> refresh;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    refresh = refresh_;
  }
  if (refresh)
    refresh(*this);
  std::string out;
  std::function<void(std::string&)> collect;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    collect = collect_;
    for (size_t index = 0; index < families_.size(); ++index) {
      const auto& spec = metric_catalog()[index];
      out += "# HELP ";
      out += spec.name;
      out += ' ';
      out += spec.help;
      out += "\n# TYPE ";
      out += spec.name;
      out += ' ';
      out += kind_name(spec.kind);
      out += '\n';
      const auto& fam = families_[index];
      // A family without labels is always shown, at zero before anything
      // happened, so that a rate() over it starts at the first scrape.
      if (spec.labels.empty() && fam.children.empty()
          && spec.kind != metric_kind::histogram) {
        out += spec.name;
        out += " 0\n";
      }
      for (const auto& [key, c] : fam.children) {
        if (spec.kind == metric_kind::histogram) {
          uint64_t cumulative = 0;
          for (size_t b = 0; b <= metric_histogram::bounds_us.size(); ++b) {
            cumulative += c->h.bucket(b);
            std::string le = b < metric_histogram::bounds_us.size()
                               ? seconds_text(metric_histogram::bounds_us[b])
                               : "+Inf";
            out += spec.name;
            out += "_bucket";
            append_labels(out, spec, key, le.c_str());
            out += ' ';
            out += std::to_string(cumulative);
            out += '\n';
          }
          out += spec.name;
          out += "_sum";
          append_labels(out, spec, key, nullptr);
          out += ' ';
          out += seconds_text(c->h.sum_us());
          out += '\n';
          out += spec.name;
          out += "_count";
          append_labels(out, spec, key, nullptr);
          out += ' ';
          out += std::to_string(c->h.count());
          out += '\n';
          continue;
        }
        out += spec.name;
        append_labels(out, spec, key, nullptr);
        out += ' ';
        out += spec.kind == metric_kind::gauge ? std::to_string(c->g.value())
                                               : std::to_string(c->c.value());
        out += '\n';
      }
    }
  }
  if (collect)
    collect(out);
  return out;
}

std::shared_ptr<metrics> make_metrics() {
  return std::make_shared<metrics>();
}

} // namespace drtp::net
