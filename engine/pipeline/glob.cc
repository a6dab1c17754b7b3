#include "engine/pipeline/glob.h"

#include <bitset>
#include <vector>

namespace kiln::pipeline {
namespace {

struct Token {
  enum Kind { kLiteral, kAnyOne, kStar, kDoubleStar, kClass };
  explicit Token(Kind k, char c = 0) : kind(k), literal(c) {}
  Kind kind;
  char literal;
  std::bitset<256> set;  // kClass: characters matched (already negated)
};

// Compiles `pattern`; returns false with *error set if malformed.
bool Compile(absl::string_view p, std::vector<Token>* out, std::string* error) {
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*') {
      if (i + 1 < p.size() && p[i + 1] == '*') {
        while (i + 1 < p.size() && p[i + 1] == '*') ++i;
        out->push_back(Token(Token::kDoubleStar));
      } else {
        out->push_back(Token(Token::kStar));
      }
    } else if (c == '?') {
      out->push_back(Token(Token::kAnyOne));
    } else if (c == '\\') {
      if (i + 1 == p.size()) {
        *error = "a trailing '\\' escapes nothing";
        return false;
      }
      out->push_back(Token(Token::kLiteral, p[++i]));
    } else if (c == '[') {
      Token t(Token::kClass);
      size_t j = i + 1;
      bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
      if (negate) ++j;
      size_t first = j;
      bool closed = false;
      for (; j < p.size(); ++j) {
        if (p[j] == ']' && j > first) {
          closed = true;
          break;
        }
        unsigned char lo = p[j];
        if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
          unsigned char hi = p[j + 2];
          if (hi < lo) {
            *error = std::string("bad range '") + p[j] + "-" + p[j + 2] +
                     "' in a character class";
            return false;
          }
          for (int ch = lo; ch <= hi; ++ch) t.set.set(ch);
          j += 2;
        } else {
          t.set.set(lo);
        }
      }
      if (!closed) {
        *error = "unterminated character class '['";
        return false;
      }
      if (negate) t.set.flip();
      t.set.reset('/');
      out->push_back(t);
      i = j;
    } else {
      out->push_back(Token(Token::kLiteral, c));
    }
  }
  return true;
}

// Adds state i and every state reachable by skipping stars.
void AddState(const std::vector<Token>& tokens, size_t i,
              std::vector<bool>* states) {
  while (true) {
    (*states)[i] = true;
    if (i < tokens.size() && (tokens[i].kind == Token::kStar ||
                              tokens[i].kind == Token::kDoubleStar)) {
      ++i;
      continue;
    }
    return;
  }
}

}  // namespace

std::string CheckGlob(absl::string_view pattern) {
  std::vector<Token> tokens;
  std::string error;
  if (!Compile(pattern, &tokens, &error)) return error;
  return "";
}

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  std::vector<Token> tokens;
  std::string error;
  if (!Compile(pattern, &tokens, &error)) return false;
  size_t n = tokens.size();
  std::vector<bool> states(n + 1, false);
  AddState(tokens, 0, &states);
  for (char raw : text) {
    unsigned char c = raw;
    std::vector<bool> next(n + 1, false);
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      if (!states[i]) continue;
      const Token& t = tokens[i];
      bool stay = false, advance = false;
      switch (t.kind) {
        case Token::kLiteral:
          advance = static_cast<unsigned char>(t.literal) == c;
          break;
        case Token::kAnyOne:
          advance = c != '/';
          break;
        case Token::kStar:
          stay = c != '/';
          break;
        case Token::kDoubleStar:
          stay = true;
          break;
        case Token::kClass:
          advance = t.set.test(c);
          break;
      }
      if (stay) AddState(tokens, i, &next), any = true;
      if (advance) AddState(tokens, i + 1, &next), any = true;
    }
    if (!any) return false;
    states.swap(next);
  }
  return states[n];
}

}  // namespace kiln::pipeline
