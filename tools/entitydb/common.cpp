#include "common.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>

namespace entitydb {
std::string on_one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out;
}

void on_run(CLI::App& cmd, std::function<void()> body) {
  cmd.callback([body = std::move(body)] {
    try {
      body();
      std::cout.flush();
      if (!std::cout) throw failure("cannot write to standard output");
      return;
    } catch (const CLI::Error&) {
      throw;
    } catch (const std::exception& e) {
      std::cerr << "error: " << on_one_line(e.what()) << "\n";
    }
    throw CLI::RuntimeError(1);
  });
}

CLI::Option* add_db_option(CLI::App& cmd, std::string& url) {
  url = "./entity.db";
  return cmd
      .add_option("--db", url,
                  "the database: a file path, sqlite:PATH, :memory: or a postgresql:// URL")
      ->envname("ENTITYDB_PATH")
      ->capture_default_str();
}

namespace {
// `url` as it may be shown: a postgresql:// URL's password is replaced by "***".
std::string shown_url(const std::string& url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos || url.rfind("postgres", 0) != 0) return url;
  std::size_t start = scheme + 3;
  std::size_t at = url.find('@', start);
  std::size_t end = url.find_first_of("/?", start);
  if (at == std::string::npos || (end != std::string::npos && at > end)) return url;
  std::size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}
}  // namespace

engine::engine(const std::string& url) {
  try {
    infra_ = entity::make_infrastructure(url);
    infra_->startup();
  } catch (const entity::error& e) {
    // The engine's own message already names the file when opening it failed; a bad url or
    // a folder that cannot be created is explained without it.
    const std::string& why = e.diag().message;
    if (why.rfind("cannot open", 0) == 0) throw failure(why);
    throw failure("cannot open database '" + shown_url(url) + "': " + e.what());
  }
}

engine::~engine() { infra_->shutdown(); }

entity::value parse_param(const std::string& text) {
  std::string_view s = text;
  // from_chars takes no '+'; "+-1" must stay text.
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  const char* end = s.data() + s.size();
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(s.data(), end, i); ec == std::errc() && p == end) return i;
  double d = 0;
  // inf and nan parse as reals but no SQL literal means them: they stay text.
  if (auto [p, ec] = std::from_chars(s.data(), end, d);
      ec == std::errc() && p == end && std::isfinite(d))
    return d;
  return text;
}

const CLI::Validator positive_seconds(
    [](std::string& text) -> std::string {
      double s = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), s);
      if (ec != std::errc() || p != text.data() + text.size() || !(s > 0) || !std::isfinite(s))
        return "'" + text + "' is not a positive number of seconds";
      return {};
    },
    "SECONDS > 0");

std::chrono::milliseconds millis_of_seconds(double seconds) {
  using ms = std::chrono::milliseconds;
  const double millis = std::ceil(seconds * 1000.0);
  return millis >= static_cast<double>(ms::max().count()) ? ms::max()
                                                          : ms(static_cast<ms::rep>(millis));
}

namespace {
// The `n` decimal digits of `s` from `pos` as a number; false unless they are all digits.
bool read_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}
}  // namespace

std::optional<utc_instant> parse_utc_time(std::string_view s) {
  const char* end = s.data() + s.size();
  if (std::int64_t millis = 0; !s.empty()) {
    auto [p, ec] = std::from_chars(s.data(), end, millis);
    if (ec == std::errc() && p == end) return utc_instant{millis, false};
  }
  // YYYY-MM-DDTHH:MM:SS, then an optional fraction, then the offset.
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!read_digits(s, 0, 4, y) || s[4] != '-' || !read_digits(s, 5, 2, mo) || s[7] != '-' ||
      !read_digits(s, 8, 2, d) || s[10] != 'T' || !read_digits(s, 11, 2, h) || s[13] != ':' ||
      !read_digits(s, 14, 2, mi) || s[16] != ':' || !read_digits(s, 17, 2, sec))
    return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{year{y}, month{static_cast<unsigned>(mo)},
                            day{static_cast<unsigned>(d)}};
  if (!date.ok() || h > 23 || mi > 59 || sec > 59) return std::nullopt;
  std::size_t pos = 19;
  int fraction_millis = 0;
  bool finer = false;
  if (pos < s.size() && s[pos] == '.') {
    const std::size_t first = ++pos;
    for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos) {
      if (pos - first < 3)
        fraction_millis = fraction_millis * 10 + (s[pos] - '0');
      else if (s[pos] != '0')
        finer = true;
    }
    if (pos == first) return std::nullopt;  // a '.' without digits
    for (std::size_t n = pos - first; n < 3; ++n) fraction_millis *= 10;
  }
  const std::string_view offset = s.substr(pos);
  if (offset != "Z" && offset != "+00:00") return std::nullopt;
  const auto at =
      sys_days(date) + hours(h) + minutes(mi) + seconds(sec) + milliseconds(fraction_millis);
  return utc_instant{duration_cast<milliseconds>(at.time_since_epoch()).count(), finer};
}

const CLI::Validator utc_time(
    [](std::string& text) -> std::string {
      if (parse_utc_time(text)) return {};
      return "'" + text +
             "' is not a time: write ISO-8601 UTC (2026-12-01T10:00:00Z, "
             "2026-12-01T10:00:00.250Z) or milliseconds since the Unix epoch";
    },
    "TIME");

std::string format_utc_time(std::int64_t millis) {
  using namespace std::chrono;
  const sys_time<milliseconds> at{milliseconds(millis)};
  const sys_days date_of = floor<days>(at);
  const year_month_day date{date_of};
  const hh_mm_ss<milliseconds> t{at - date_of};
  // A year past 9999 (or before year 0) takes ISO-8601's expanded form, a sign and five digits.
  const int y = int(date.year());
  char buf[64];
  std::snprintf(buf, sizeof buf,
                y >= 0 && y <= 9999 ? "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ"
                                    : "%+06d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                y, unsigned(date.month()), unsigned(date.day()), int(t.hours().count()),
                int(t.minutes().count()), int(t.seconds().count()), int(t.subseconds().count()));
  return buf;
}

std::string json_reason(const entity::json::exception& e) {
  std::string_view what = e.what();
  auto tag_end = what.find("] ");
  return std::string(tag_end == std::string_view::npos ? what : what.substr(tag_end + 2));
}

void for_each_json_line(const std::string& file,
                        const std::function<void(entity::json&, const line_failure&)>& each,
                        std::size_t max_line_bytes) {
  if (file == "-") return for_each_json_line(std::cin, file, each, max_line_bytes);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw failure("cannot read '" + file + "': " + std::strerror(errno));
  for_each_json_line(in, file, each, max_line_bytes);
}

namespace {
// The next line of `in` (without its newline) into `line`; false at the end of the input. A
// line longer than `max` bytes sets `too_long` and is not read further.
bool read_line(std::istream& in, std::string& line, std::size_t max, bool& too_long) {
  using traits = std::istream::traits_type;
  line.clear();
  too_long = false;
  std::streambuf* buf = in.rdbuf();
  for (bool any = false;; any = true) {
    traits::int_type c = buf->sbumpc();
    if (traits::eq_int_type(c, traits::eof())) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    if (traits::to_char_type(c) == '\n') return true;
    if (line.size() == max) {
      too_long = true;
      return true;
    }
    line.push_back(traits::to_char_type(c));
  }
}
}  // namespace

void for_each_json_line(std::istream& in, const std::string& name,
                        const std::function<void(entity::json&, const line_failure&)>& each,
                        std::size_t max_line_bytes) {
  std::string line;
  bool too_long = false;
  for (std::size_t number = 1; read_line(in, line, max_line_bytes, too_long); ++number) {
    line_failure bad = [&](const std::string& why) {
      return failure(name + ":" + std::to_string(number) + ": " + why);
    };
    if (too_long)
      throw bad("the line is longer than " + std::to_string(max_line_bytes) +
                " bytes (the limit; --max-line-bytes raises it)");
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    entity::json_text_problem problem;
    std::optional<entity::json> j = entity::parse_json(line, problem);
    if (!j)
      throw bad(problem.too_deep ? "the line is " + problem.reason : "not JSON: " + problem.reason);
    if (!j->is_object()) throw bad("not a JSON object");
    each(*j, bad);
  }
  if (in.bad()) throw failure("cannot read '" + name + "': " + std::strerror(errno));
}

CLI::Option* add_max_line_bytes_option(CLI::App& cmd, std::size_t& max_line_bytes) {
  max_line_bytes = default_max_line_bytes;
  return cmd
      .add_option("--max-line-bytes", max_line_bytes,
                  "the longest line read, in bytes before its newline (64 MiB by default)")
      ->option_text("N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

void replace_file(const std::string& file, const std::string& text) {
  namespace fs = std::filesystem;
  auto cannot = [&](int err) {
    return failure("cannot write '" + file + "': " + std::strerror(err));
  };
  fs::path target(file);
  std::error_code ec;
  if (fs::is_symlink(target, ec)) {
    fs::path resolved = fs::weakly_canonical(target, ec);
    if (!ec) target = resolved;
  }
  struct stat old {};
  const bool existed = ::stat(target.c_str(), &old) == 0;
  if (existed && !S_ISREG(old.st_mode)) {
    // A device or a pipe (/dev/stdout): nothing to replace, written as it is.
    std::ofstream out(target, std::ios::binary);
    if (out) out << text;
    if (out) out.flush();
    if (!out) throw cannot(errno);
    return;
  }
  fs::path folder = target.parent_path();
  if (folder.empty()) folder = ".";
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = (folder / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                     std::to_string(attempt)))
              .string();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt == 99)) throw cannot(errno);
  }
  auto give_up = [&](int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return cannot(err);
  };
  if (existed && ::fchmod(fd, old.st_mode & 07777) != 0) throw give_up(errno);
  for (std::size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw give_up(errno);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) throw give_up(errno);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw cannot(err);
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw cannot(err);
  }
  // The rename survives a crash once the folder is synced too.
  if (int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void refuse_database_file(const std::string& db_url, const std::string& file) {
  namespace fs = std::filesystem;
  entity::engine_target t = entity::parse_target(db_url);
  if (t.postgres || t.location == ":memory:") return;
  struct stat out {};
  const bool out_exists = ::stat(file.c_str(), &out) == 0;
  std::error_code out_ec;
  const fs::path out_path = fs::weakly_canonical(fs::absolute(file), out_ec);
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    const std::string part = t.location + suffix;
    struct stat st {};
    bool same = out_exists && ::stat(part.c_str(), &st) == 0 && st.st_dev == out.st_dev &&
                st.st_ino == out.st_ino;
    if (!same && !out_ec) {
      std::error_code ec;
      fs::path p = fs::weakly_canonical(fs::absolute(part), ec);
      same = !ec && p == out_path;
    }
    if (same)
      throw failure("will not write to '" + file + "': it is the database" +
                    (*suffix ? std::string("'s ") + suffix + " file" : std::string()) + " ('" +
                    part + "')");
  }
}

}  // namespace entitydb
