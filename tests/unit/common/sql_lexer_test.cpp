// The SQL lexer both engines scan with: exact token sequences per dialect, hostile input
// included (unterminated quotes and comments, nested comments, dollar quotes, `?` where it is
// no placeholder, multi-byte UTF-8, NUL bytes).
#include "common/sql_lexer.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace entity::detail {
// Readable failures: the kind's name, not its number.
void PrintTo(sql_token_kind k, std::ostream* os) {
  static constexpr const char* names[] = {
      "whitespace",        "comment",       "word",        "number",    "string",
      "quoted_identifier", "dollar_quoted", "placeholder", "separator", "punctuation"};
  *os << names[static_cast<int>(k)];
}
}  // namespace entity::detail

namespace {

using entity::sql_dialect;
using entity::detail::lex_sql;
using entity::detail::sql_lexer;
using entity::detail::sql_token;
using K = entity::detail::sql_token_kind;
using tokens = std::vector<std::pair<K, std::string>>;

constexpr auto sqlite = sql_dialect::sqlite;
constexpr auto pg = sql_dialect::postgresql;

// The tokens of `sql`, after checking that they cover it back to back.
tokens lex(std::string_view sql, sql_dialect d) {
  tokens out;
  std::size_t at = 0;
  for (const sql_token& t : lex_sql(sql, d)) {
    EXPECT_EQ(t.begin, at) << "a gap or an overlap before token " << out.size();
    EXPECT_FALSE(t.text.empty());
    EXPECT_EQ(t.text.data(), sql.data() + t.begin);
    at = t.end();
    out.emplace_back(t.kind, std::string(t.text));
  }
  EXPECT_EQ(at, sql.size()) << "the tokens do not reach the end";
  return out;
}

// ---- common to both dialects -------------------------------------------------------------

TEST(SqlLexer, CutsAStatementIntoTokens) {
  tokens want{
      {K::word, "SELECT"},   {K::whitespace, " "},  {K::word, "a"},        {K::punctuation, ","},
      {K::whitespace, "  "}, {K::word, "b_2"},      {K::whitespace, "\n"}, {K::word, "FROM"},
      {K::whitespace, "\t"}, {K::word, "t"},        {K::whitespace, " "},  {K::word, "WHERE"},
      {K::whitespace, " "},  {K::word, "x"},        {K::punctuation, ">"}, {K::punctuation, "="},
      {K::placeholder, "?"}, {K::whitespace, " "},  {K::word, "AND"},      {K::whitespace, " "},
      {K::word, "y"},        {K::punctuation, "="}, {K::number, "3.14"},   {K::separator, ";"}};
  for (auto d : {sqlite, pg})
    EXPECT_EQ(lex("SELECT a,  b_2\nFROM\tt WHERE x>=? AND y=3.14;", d), want);
}

TEST(SqlLexer, NothingLexesToNoTokens) {
  EXPECT_TRUE(lex_sql("", sqlite).empty());
  EXPECT_TRUE(lex_sql("", pg).empty());
  sql_lexer lexer("", pg);
  sql_token t{K::word, 7, "x"};
  EXPECT_FALSE(lexer.next(t));
  EXPECT_EQ(t.begin, 7u);  // untouched
}

TEST(SqlLexer, NumbersAreDigitsWithAnOptionalFraction) {
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(lex("1 2. 1e5 .5", d), (tokens{{K::number, "1"},
                                             {K::whitespace, " "},
                                             {K::number, "2."},
                                             {K::whitespace, " "},
                                             {K::number, "1"},
                                             {K::word, "e5"},
                                             {K::whitespace, " "},
                                             {K::punctuation, "."},
                                             {K::number, "5"}}));
  }
}

TEST(SqlLexer, StringsKeepDoubledQuotesInside) {
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(lex("'it''s ?';''", d),
              (tokens{{K::string, "'it''s ?'"}, {K::separator, ";"}, {K::string, "''"}}));
  }
}

TEST(SqlLexer, UnterminatedQuotesRunToTheEnd) {
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(lex("SELECT 'open ?; x", d),
              (tokens{{K::word, "SELECT"}, {K::whitespace, " "}, {K::string, "'open ?; x"}}));
    EXPECT_EQ(lex("'a''", d), (tokens{{K::string, "'a''"}}));  // '' is a quote inside
    EXPECT_EQ(lex("'", d), (tokens{{K::string, "'"}}));
    EXPECT_EQ(lex("\"open ; ?", d), (tokens{{K::quoted_identifier, "\"open ; ?"}}));
  }
}

TEST(SqlLexer, QuotedIdentifiersHideWhatTheyHold) {
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(
        lex("\"a?b\"\"c;\".x", d),
        (tokens{{K::quoted_identifier, "\"a?b\"\"c;\""}, {K::punctuation, "."}, {K::word, "x"}}));
  }
}

TEST(SqlLexer, LineCommentsEndBeforeTheNewline) {
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(lex("? -- is it ?;\n?--", d), (tokens{{K::placeholder, "?"},
                                                    {K::whitespace, " "},
                                                    {K::comment, "-- is it ?;"},
                                                    {K::whitespace, "\n"},
                                                    {K::placeholder, "?"},
                                                    {K::comment, "--"}}));
    EXPECT_EQ(lex("1-2", d), (tokens{{K::number, "1"}, {K::punctuation, "-"}, {K::number, "2"}}));
  }
}

TEST(SqlLexer, UnterminatedBlockCommentsRunToTheEnd) {
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(lex("? /* ; ?", d),
              (tokens{{K::placeholder, "?"}, {K::whitespace, " "}, {K::comment, "/* ; ?"}}));
    EXPECT_EQ(lex("/*/", d), (tokens{{K::comment, "/*/"}}));  // the opener's '*' closes nothing
    EXPECT_EQ(lex("/**/;", d), (tokens{{K::comment, "/**/"}, {K::separator, ";"}}));
  }
}

TEST(SqlLexer, MultibyteUtf8IsPartOfNames) {
  // "ünï" and "名前" are names; so are stray bytes >= 0x80 (invalid UTF-8 lexes too).
  for (auto d : {sqlite, pg}) {
    EXPECT_EQ(lex("SELECT 'héllo ?' AS ünï, 名前, \xff\xfe", d), (tokens{{K::word, "SELECT"},
                                                                         {K::whitespace, " "},
                                                                         {K::string, "'héllo ?'"},
                                                                         {K::whitespace, " "},
                                                                         {K::word, "AS"},
                                                                         {K::whitespace, " "},
                                                                         {K::word, "ünï"},
                                                                         {K::punctuation, ","},
                                                                         {K::whitespace, " "},
                                                                         {K::word, "名前"},
                                                                         {K::punctuation, ","},
                                                                         {K::whitespace, " "},
                                                                         {K::word, "\xff\xfe"}}));
  }
}

TEST(SqlLexer, NulBytesAreOrdinaryBytes) {
  using namespace std::string_literals;
  for (auto d : {sqlite, pg}) {
    std::string sql = "a\0;'\0?'\0"s;
    EXPECT_EQ(lex(sql, d), (tokens{{K::word, "a"},
                                   {K::punctuation, "\0"s},
                                   {K::separator, ";"},
                                   {K::string, "'\0?'"s},
                                   {K::punctuation, "\0"s}}));
    // A NUL right after '-' or '/' opens no comment.
    EXPECT_EQ(lex("-\0-"s, d),
              (tokens{{K::punctuation, "-"}, {K::punctuation, "\0"s}, {K::punctuation, "-"}}));
  }
}

TEST(SqlLexer, EveryPrefixOfHostileTextLexes) {
  // Every cut of text dense in openers ends inside some construct; each lexes, covered.
  std::string hostile =
      "E'\\'' $a$ $$ /* /* */ -- \n \"\" `` [] $1 ?1 :n @ 'x''y' e'\\\\' \xc3\xa9$\xc3\xa9$ ;";
  for (auto d : {sqlite, pg})
    for (std::size_t n = 0; n <= hostile.size(); ++n)
      lex(std::string_view(hostile).substr(0, n), d);
}

TEST(SqlLexer, WordsCompareIgnoringAsciiCase) {
  auto t = lex_sql("BeGiN atomic", pg);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_TRUE(t[0].is_word("begin"));
  EXPECT_TRUE(t[0].is_word("BEGIN"));
  EXPECT_FALSE(t[0].is_word("begi"));
  EXPECT_FALSE(t[1].is_word(" "));  // whitespace is no word
  EXPECT_TRUE(t[2].is_word("ATOMIC"));
  EXPECT_TRUE(t[0].blank() == false && t[1].blank());
}

// ---- SQLite --------------------------------------------------------------------------------

TEST(SqlLexerSqlite, BackticksAndBracketsQuoteIdentifiers) {
  EXPECT_EQ(lex("`a``;?` [b;?]]", sqlite), (tokens{{K::quoted_identifier, "`a``;?`"},
                                                   {K::whitespace, " "},
                                                   {K::quoted_identifier, "[b;?]"},
                                                   {K::punctuation, "]"}}));
  EXPECT_EQ(lex("[open ;", sqlite), (tokens{{K::quoted_identifier, "[open ;"}}));
  EXPECT_EQ(lex("`open ;", sqlite), (tokens{{K::quoted_identifier, "`open ;"}}));
}

TEST(SqlLexerSqlite, BlockCommentsDoNotNest) {
  EXPECT_EQ(lex("/* a /* b */ c */;", sqlite), (tokens{{K::comment, "/* a /* b */"},
                                                       {K::whitespace, " "},
                                                       {K::word, "c"},
                                                       {K::whitespace, " "},
                                                       {K::punctuation, "*"},
                                                       {K::punctuation, "/"},
                                                       {K::separator, ";"}}));
}

TEST(SqlLexerSqlite, BackslashesEscapeNothing) {
  EXPECT_EQ(
      lex("E'a\\';?", sqlite),
      (tokens{{K::word, "E"}, {K::string, "'a\\'"}, {K::separator, ";"}, {K::placeholder, "?"}}));
}

TEST(SqlLexerSqlite, PlaceholdersNumberedAndNamed) {
  EXPECT_EQ(lex("?12,:name,@x1,$v$w,?", sqlite), (tokens{{K::placeholder, "?12"},
                                                         {K::punctuation, ","},
                                                         {K::placeholder, ":name"},
                                                         {K::punctuation, ","},
                                                         {K::placeholder, "@x1"},
                                                         {K::punctuation, ","},
                                                         {K::placeholder, "$v$w"},
                                                         {K::punctuation, ","},
                                                         {K::placeholder, "?"}}));
  // With no name after it, the sigil is punctuation.
  EXPECT_EQ(lex(": @ $", sqlite), (tokens{{K::punctuation, ":"},
                                          {K::whitespace, " "},
                                          {K::punctuation, "@"},
                                          {K::whitespace, " "},
                                          {K::punctuation, "$"}}));
}

TEST(SqlLexerSqlite, DollarsQuoteNothing) {
  EXPECT_EQ(lex("$a ; $a", sqlite), (tokens{{K::placeholder, "$a"},
                                            {K::whitespace, " "},
                                            {K::separator, ";"},
                                            {K::whitespace, " "},
                                            {K::placeholder, "$a"}}));
}

// ---- PostgreSQL ----------------------------------------------------------------------------

TEST(SqlLexerPostgres, BlockCommentsNest) {
  EXPECT_EQ(lex("/* a /* ? */ still ; */?", pg),
            (tokens{{K::comment, "/* a /* ? */ still ; */"}, {K::placeholder, "?"}}));
  EXPECT_EQ(lex("/* /* */ open ;", pg), (tokens{{K::comment, "/* /* */ open ;"}}));
}

TEST(SqlLexerPostgres, DollarQuotes) {
  EXPECT_EQ(lex("$$ ? ; $$,$tag$ $$ ' $tag$;", pg), (tokens{{K::dollar_quoted, "$$ ? ; $$"},
                                                            {K::punctuation, ","},
                                                            {K::dollar_quoted, "$tag$ $$ ' $tag$"},
                                                            {K::separator, ";"}}));
  // Tags are case-sensitive and may hold UTF-8 and digits (not first).
  EXPECT_EQ(lex("$a$ x $A$ ;", pg), (tokens{{K::dollar_quoted, "$a$ x $A$ ;"}}));
  EXPECT_EQ(lex("$é1$;$é1$;", pg), (tokens{{K::dollar_quoted, "$é1$;$é1$"}, {K::separator, ";"}}));
  // Unterminated: to the end.
  EXPECT_EQ(lex("$body$ ?", pg), (tokens{{K::dollar_quoted, "$body$ ?"}}));
  EXPECT_EQ(lex("$$", pg), (tokens{{K::dollar_quoted, "$$"}}));
}

TEST(SqlLexerPostgres, DollarsAfterNameCharactersQuoteNothing) {
  // In a name, '$' is a name character; after a number or a closing '$' it is punctuation.
  EXPECT_EQ(lex("a$b$ ?", pg),
            (tokens{{K::word, "a$b$"}, {K::whitespace, " "}, {K::placeholder, "?"}}));
  EXPECT_EQ(lex("1$$ ?", pg), (tokens{{K::number, "1"},
                                      {K::punctuation, "$"},
                                      {K::punctuation, "$"},
                                      {K::whitespace, " "},
                                      {K::placeholder, "?"}}));
  EXPECT_EQ(lex("$$x$$$$ ?", pg), (tokens{{K::dollar_quoted, "$$x$$"},
                                          {K::punctuation, "$"},
                                          {K::punctuation, "$"},
                                          {K::whitespace, " "},
                                          {K::placeholder, "?"}}));
}

TEST(SqlLexerPostgres, NumberedPlaceholders) {
  EXPECT_EQ(lex("$1,$12::int,$,$a", pg), (tokens{{K::placeholder, "$1"},
                                                 {K::punctuation, ","},
                                                 {K::placeholder, "$12"},
                                                 {K::punctuation, ":"},
                                                 {K::punctuation, ":"},
                                                 {K::word, "int"},
                                                 {K::punctuation, ","},
                                                 {K::punctuation, "$"},
                                                 {K::punctuation, ","},
                                                 {K::punctuation, "$"},
                                                 {K::word, "a"}}));
  // `?` is one byte: a digit after it is a number; ':' and '@' name nothing.
  EXPECT_EQ(lex("?1 :n @m", pg), (tokens{{K::placeholder, "?"},
                                         {K::number, "1"},
                                         {K::whitespace, " "},
                                         {K::punctuation, ":"},
                                         {K::word, "n"},
                                         {K::whitespace, " "},
                                         {K::punctuation, "@"},
                                         {K::word, "m"}}));
}

TEST(SqlLexerPostgres, EscapeStringsTakeBackslashes) {
  EXPECT_EQ(lex("E'a\\' ?';e'\\\\'", pg), (tokens{{K::word, "E"},
                                                  {K::string, "'a\\' ?'"},
                                                  {K::separator, ";"},
                                                  {K::word, "e"},
                                                  {K::string, "'\\\\'"}}));
  // An E ending a longer name, or none: the backslash escapes nothing.
  EXPECT_EQ(lex("xe'a\\';'b\\';", pg), (tokens{{K::word, "xe"},
                                               {K::string, "'a\\'"},
                                               {K::separator, ";"},
                                               {K::string, "'b\\'"},
                                               {K::separator, ";"}}));
  EXPECT_EQ(lex("E'\\", pg), (tokens{{K::word, "E"}, {K::string, "'\\"}}));  // unterminated
}

TEST(SqlLexerPostgres, BackticksAndBracketsArePunctuation) {
  EXPECT_EQ(lex("`a;`[b;]", pg), (tokens{{K::punctuation, "`"},
                                         {K::word, "a"},
                                         {K::separator, ";"},
                                         {K::punctuation, "`"},
                                         {K::punctuation, "["},
                                         {K::word, "b"},
                                         {K::separator, ";"},
                                         {K::punctuation, "]"}}));
}

}  // namespace
