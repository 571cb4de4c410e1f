// entitydb sql: runs a statement (or a script of several) and prints its rows, as an aligned
// table for people or as JSON Lines for programs.
#include <algorithm>
#include <cctype>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace entitydb {
namespace {

struct sql_args {
  std::string db;
  std::string sql;
  std::vector<std::string> params;
  double timeout = 0;  // seconds; 0 keeps the engine's query_timeout
  bool json = false;
};

// True when `sql` holds more than one statement: something significant after a ';'. A ';'
// inside quoted text ('...', "...", `...`, [...]) or a comment does not end a statement.
bool holds_several_statements(std::string_view sql) {
  constexpr auto npos = std::string_view::npos;
  bool ended = false;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (sql.substr(i, 2) == "--") {
      if ((i = sql.find('\n', i)) == npos) break;
    } else if (sql.substr(i, 2) == "/*") {
      if ((i = sql.find("*/", i + 2)) == npos) break;
      ++i;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
    } else if (c == ';') {
      ended = true;
    } else if (ended) {
      return true;
    } else if (c == '\'' || c == '"' || c == '`' || c == '[') {
      // A doubled quote inside is two quoted runs back to back: the same for this purpose.
      if ((i = sql.find(c == '[' ? ']' : c, i + 1)) == npos) break;
    }
  }
  return false;
}

std::string hex(const entity::blob& b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.bytes.size() * 2);
  for (std::byte c : b.bytes) {
    out += digits[static_cast<unsigned>(c) >> 4];
    out += digits[static_cast<unsigned>(c) & 15];
  }
  return out;
}

// One row as a JSON object in column order; blobs become hex strings.
nlohmann::ordered_json row_json(const entity::row& r) {
  auto obj = nlohmann::ordered_json::object();
  const auto& names = r.column_names();
  for (std::size_t i = 0; i < r.size(); ++i) {
    const entity::value& v = r[i];
    auto& field = obj[names[i]];
    if (v.is_int())
      field = v.as_int();
    else if (v.is_double())
      field = v.as_double();
    else if (v.is_text())
      field = v.as_text();
    else if (v.is_blob())
      field = hex(v.as_blob());
  }
  return obj;
}

// Characters on screen: UTF-8 continuation bytes take no room of their own.
std::size_t width_of(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

// Header, a rule, then the rows; columns two spaces apart, numeric columns right-aligned.
void print_table(const std::vector<entity::row>& rows) {
  const auto& names = rows.front().column_names();
  const std::size_t n = names.size();
  std::vector<std::vector<std::string>> lines;
  lines.emplace_back(names.begin(), names.end());
  lines.emplace_back(n);  // the rule, filled in once the widths are known
  std::vector<std::size_t> width(n);
  std::vector<bool> numeric(n, true), any_number(n, false);
  for (const entity::row& r : rows) {
    auto& cells = lines.emplace_back();
    for (std::size_t i = 0; i < n; ++i) {
      cells.push_back(on_one_line(r[i].to_string()));  // --json gives the exact text
      if (r[i].is_int() || r[i].is_double())
        any_number[i] = true;
      else if (!r[i].is_null())
        numeric[i] = false;
    }
  }
  for (const auto& cells : lines)
    for (std::size_t i = 0; i < n; ++i) width[i] = std::max(width[i], width_of(cells[i]));
  for (std::size_t i = 0; i < n; ++i) lines[1][i] = std::string(width[i], '-');
  for (const auto& cells : lines) {
    std::string line;
    for (std::size_t i = 0; i < n; ++i) {
      std::string pad(width[i] - width_of(cells[i]), ' ');
      if (i > 0) line += "  ";
      if (numeric[i] && any_number[i])
        line += pad + cells[i];
      else
        line += cells[i] + (i + 1 < n ? pad : "");  // no trailing blanks
    }
    std::cout << line << "\n";
  }
}

void run_sql(const sql_args& a) {
  const bool script = holds_several_statements(a.sql);
  if (script && !a.params.empty())
    throw CLI::ValidationError("PARAM", "a script of several statements takes no parameters");
  entity::params args;
  for (const std::string& p : a.params) args.push_back(parse_param(p));

  engine e(a.db);
  entity::database db = e.db();
  // A timeout beyond what milliseconds can count means "no deadline to speak of": it
  // saturates.
  if (a.timeout > 0) db = db.with_timeout(millis_of_seconds(a.timeout));
  if (script) {
    db.execute_script(a.sql);
    return;
  }
  entity::result r = db.execute(a.sql, std::move(args));
  if (r.rows.empty()) {
    if (r.rows_affected > 0)
      std::cerr << r.rows_affected << (r.rows_affected == 1 ? " row" : " rows") << " affected\n";
  } else if (a.json) {
    for (const entity::row& row : r.rows) std::cout << dump_json(row_json(row)) << "\n";
  } else {
    print_table(r.rows);
  }
}

}  // namespace

void add_sql_command(CLI::App& app) {
  auto a = std::make_shared<sql_args>();
  CLI::App* cmd = app.add_subcommand("sql", "Run SQL and print the rows it returns");
  add_db_option(*cmd, a->db);
  cmd->add_option("--timeout", a->timeout,
                  "stop the statement after SECONDS (fractions allowed); default 30")
      ->option_text("SECONDS")
      ->check(positive_seconds);
  cmd->add_flag("--json", a->json, "print one JSON object per row instead of a table");
  cmd->add_option("SQL", a->sql, "the statement, or a script of ';'-separated statements")
      ->required();
  cmd->add_option("PARAM", a->params, "values bound to the statement's '?' in order");
  cmd->footer(
      "Rows print as a table with a header line (nothing for a statement that returns no\n"
      "rows), or with --json as JSON Lines: one object per row keyed by column name, NULL as\n"
      "null and blobs as hex strings.\n"
      "PARAMs are typed: an integer (-12) binds as an integer, a real (1.5, 1e3) as a real,\n"
      "anything else as text. Put '--' before SQL to pass a PARAM that starts with '-' and\n"
      "is not a number.\n"
      "A script (several statements) runs in order and prints nothing; it takes no PARAMs.\n"
      "Each of its statements commits by itself unless the script holds BEGIN ... COMMIT.\n"
      "Exit status: 0 success, 1 the statement failed (or timed out), 2 a usage error.\n"
      "Example: entitydb sql --db agent.db 'SELECT key FROM memory WHERE key LIKE ?' 'user:%'");
  on_run(*cmd, [a] { run_sql(*a); });
}

}  // namespace entitydb
