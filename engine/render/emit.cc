#include "engine/render/emit.h"

#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/render/scalar.h"

namespace kiln::render {
namespace {

constexpr int kBestWidth = 80;
constexpr int kBestIndent = 2;
constexpr size_t kMaxSimpleKeyLength = 128;
constexpr absl::string_view kMergeKey = "<<";

// Length of the UTF-8 sequence starting with byte c.
int Width(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

bool IsPrintable(absl::string_view s, size_t i) {
  unsigned char b = s[i];
  unsigned char b1 = i + 1 < s.size() ? s[i + 1] : 0;
  unsigned char b2 = i + 2 < s.size() ? s[i + 2] : 0;
  return b == 0x0A || (b >= 0x20 && b <= 0x7E) || (b == 0xC2 && b1 >= 0xA0) ||
         (b > 0xC2 && b < 0xED) || (b == 0xED && b1 < 0xA0) || b == 0xEE ||
         (b == 0xEF && !(b1 == 0xBB && b2 == 0xBF) &&
          !(b1 == 0xBF && (b2 == 0xBE || b2 == 0xBF)));
}

bool IsSpace(absl::string_view s, size_t i) {
  return i < s.size() && s[i] == ' ';
}

bool IsBreak(absl::string_view s, size_t i) {
  if (i >= s.size()) return false;
  unsigned char b = s[i];
  unsigned char b1 = i + 1 < s.size() ? s[i + 1] : 0;
  unsigned char b2 = i + 2 < s.size() ? s[i + 2] : 0;
  return b == '\r' || b == '\n' || (b == 0xC2 && b1 == 0x85) ||
         (b == 0xE2 && b1 == 0x80 && (b2 == 0xA8 || b2 == 0xA9));
}

bool IsBlankOrEnd(absl::string_view s, size_t i) {
  return i >= s.size() || s[i] == ' ' || s[i] == '\t' || IsBreak(s, i);
}

struct Analysis {
  bool multiline = false;
  bool block_plain_allowed = true;
  bool single_quoted_allowed = true;
  bool block_allowed = true;
};

// libyaml's yaml_emitter_analyze_scalar, block context.
Analysis Analyze(absl::string_view s) {
  Analysis a;
  if (s.empty()) {
    a.block_allowed = false;
    return a;
  }
  bool block_indicators = false, leading_space = false, leading_break = false,
       trailing_space = false, trailing_break = false, break_space = false,
       space_break = false, previous_space = false, previous_break = false,
       line_breaks = false, special = false;
  if (s.substr(0, 3) == "---" || s.substr(0, 3) == "...") {
    block_indicators = true;
  }
  bool preceded_by_ws = true;
  bool followed_by_ws = IsBlankOrEnd(s, Width(s[0]));
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (i == 0) {
      switch (c) {
        case '#':
        case ',':
        case '[':
        case ']':
        case '{':
        case '}':
        case '&':
        case '*':
        case '!':
        case '|':
        case '>':
        case '\'':
        case '"':
        case '%':
        case '@':
        case '`':
          block_indicators = true;
          break;
        case '?':
        case ':':
          if (followed_by_ws) block_indicators = true;
          break;
        case '-':
          if (followed_by_ws) block_indicators = true;
          break;
        default:
          break;
      }
    } else {
      if (c == ':' && followed_by_ws) block_indicators = true;
      if (c == '#' && preceded_by_ws) block_indicators = true;
    }
    if (!IsPrintable(s, i) ||
        (i == 0 && s.size() >= 3 && s.substr(0, 3) == "\xEF\xBB\xBF")) {
      special = true;
    }
    if (IsBreak(s, i)) line_breaks = true;
    if (c == ' ') {
      if (i == 0) leading_space = true;
      if (i + 1 == s.size()) trailing_space = true;
      if (previous_break) break_space = true;
      previous_space = true;
      previous_break = false;
    } else if (IsBreak(s, i)) {
      if (i == 0) leading_break = true;
      if (i + Width(c) == s.size()) trailing_break = true;
      if (previous_space) space_break = true;
      previous_break = true;
      previous_space = false;
    } else {
      previous_space = previous_break = false;
    }
    preceded_by_ws = IsBlankOrEnd(s, i);
    i += Width(c);
    if (i < s.size()) followed_by_ws = IsBlankOrEnd(s, i + Width(s[i]));
  }
  a.multiline = line_breaks;
  if (leading_space || leading_break || trailing_space || trailing_break) {
    a.block_plain_allowed = false;
  }
  if (trailing_space) a.block_allowed = false;
  if (break_space) {
    a.block_plain_allowed = false;
    a.single_quoted_allowed = false;
  }
  if (space_break || special) {
    a.block_plain_allowed = false;
    a.single_quoted_allowed = false;
    a.block_allowed = false;
  }
  if (line_breaks) a.block_plain_allowed = false;
  if (block_indicators) a.block_plain_allowed = false;
  return a;
}

class Emitter {
 public:
  std::string Take() { return std::move(out_); }

  void Document(const Value& v) {
    if (v.IsMap() && !v.map.empty()) {
      Map(v, 0, false);
    } else if (v.IsList() && !v.list.empty()) {
      List(v, 0, false);
    } else {
      // libyaml's increase_indent from the root (indent -1) gives the best
      // indent, so a root block scalar's lines and folded continuation lines
      // are indented and cannot read as `---`, `...` or a new node.
      ScalarOrEmpty(v, kBestIndent, false);
      EndLine();
    }
  }

 private:
  enum class Style { kPlain, kSingle, kDouble, kLiteral };

  void Put(absl::string_view s) {
    for (size_t i = 0; i < s.size(); i += Width(s[i])) ++column_;
    out_.append(s.data(), s.size());
  }
  void Newline() {
    out_ += '\n';
    column_ = 0;
  }
  // Ends the current line unless a block scalar already did.
  void EndLine() {
    if (column_ > 0) Newline();
  }
  void Indent(int n) {
    out_.append(n, ' ');
    column_ += n;
  }
  // libyaml write_indent for folding inside a scalar.
  void Fold(int indent) {
    Newline();
    Indent(indent);
  }

  void Map(const Value& v, int indent, bool inline_first) {
    bool first = true;
    for (const auto& [key, value] : v.map) {
      if (!(first && inline_first)) Indent(indent);
      first = false;
      if (IsSimpleKey(key)) {
        String(key, indent, /*simple_key=*/true);
        Put(":");
      } else {
        // libyaml's explicit key: "? KEY", then ":" on a line of its own;
        // a block collection value starts on the ":" line, indented as a
        // mapping value (kubectl kustomize v5.5.0).
        Put("? ");
        String(key, indent + kBestIndent, /*simple_key=*/false);
        EndLine();
        Indent(indent);
        Put(":");
        if (value.IsMap() && !value.map.empty()) {
          Put(" ");
          Map(value, indent + 2, true);
          continue;
        }
        if (value.IsList() && !value.list.empty()) {
          Put(" ");
          List(value, indent + 2, true);
          continue;
        }
      }
      Value_(value, indent);
    }
  }

  // libyaml's check_simple_key for a scalar key: one line and at most 128
  // bytes; longer keys could exceed a reader's implicit-key limit.
  static bool IsSimpleKey(absl::string_view key) {
    return key.size() <= kMaxSimpleKeyLength && !Analyze(key).multiline;
  }

  void List(const Value& v, int indent, bool inline_first) {
    bool first = true;
    for (const Value& item : v.list) {
      if (!(first && inline_first)) Indent(indent);
      first = false;
      Put("-");
      if (item.IsMap() && !item.map.empty()) {
        Put(" ");
        Map(item, indent + 2, true);
      } else if (item.IsList() && !item.list.empty()) {
        Put(" ");
        List(item, indent + 2, true);
      } else {
        Put(" ");
        ScalarOrEmpty(item, indent + 2, false);
        EndLine();
      }
    }
  }

  // A map entry's value after "key:".
  void Value_(const Value& v, int indent) {
    if (v.IsMap() && !v.map.empty()) {
      Newline();
      Map(v, indent + 2, false);
    } else if (v.IsList() && !v.list.empty()) {
      Newline();
      List(v, indent, false);
    } else {
      Put(" ");
      ScalarOrEmpty(v, indent + 2, false);
      EndLine();
    }
  }

  void ScalarOrEmpty(const Value& v, int indent, bool simple_key) {
    switch (v.type) {
      case Value::Type::kMap:
        Put("{}");
        return;
      case Value::Type::kList:
        Put("[]");
        return;
      case Value::Type::kString:
        String(v.text, indent, simple_key);
        return;
      default:
        Put(v.ScalarText());
    }
  }

  void String(absl::string_view s, int indent, bool simple_key) {
    Style style = Style::kPlain;
    if (s.find('\n') != absl::string_view::npos) {
      style = Style::kLiteral;
    } else if (StringNeedsDoubleQuotes(s)) {
      style = Style::kDouble;
    } else if (simple_key && s == kMergeKey) {
      // A plain `<<` key reads back as a merge key. kustomize prints a `<<`
      // value plain (the fixtures rely on it), so only keys are quoted.
      style = Style::kDouble;
    }
    Analysis a = Analyze(s);
    if (simple_key && a.multiline) style = Style::kDouble;
    if (style == Style::kPlain && !a.block_plain_allowed)
      style = Style::kSingle;
    if (style == Style::kSingle && !a.single_quoted_allowed) {
      style = Style::kDouble;
    }
    if (style == Style::kLiteral && (!a.block_allowed || simple_key)) {
      style = Style::kDouble;
    }
    bool allow_breaks = !simple_key;
    switch (style) {
      case Style::kPlain:
        Plain(s, indent, allow_breaks);
        break;
      case Style::kSingle:
        Single(s, indent, allow_breaks);
        break;
      case Style::kDouble:
        Double(s, indent, allow_breaks);
        break;
      case Style::kLiteral:
        Literal(s, indent);
        break;
    }
  }

  void Plain(absl::string_view s, int indent, bool allow_breaks) {
    bool spaces = false;
    for (size_t i = 0; i < s.size();) {
      int w = Width(s[i]);
      if (s[i] == ' ') {
        if (allow_breaks && !spaces && column_ > kBestWidth &&
            !IsSpace(s, i + 1)) {
          Fold(indent);
        } else {
          Put(s.substr(i, 1));
        }
        spaces = true;
      } else {
        Put(s.substr(i, w));
        spaces = false;
      }
      i += w;
    }
  }

  void Single(absl::string_view s, int indent, bool allow_breaks) {
    Put("'");
    bool spaces = false;
    for (size_t i = 0; i < s.size();) {
      int w = Width(s[i]);
      if (s[i] == ' ') {
        if (allow_breaks && !spaces && column_ > kBestWidth && i != 0 &&
            i != s.size() - 1 && !IsSpace(s, i + 1)) {
          Fold(indent);
        } else {
          Put(" ");
        }
        spaces = true;
      } else {
        Put(s[i] == '\'' ? absl::string_view("''") : s.substr(i, w));
        spaces = false;
      }
      i += w;
    }
    Put("'");
  }

  void Double(absl::string_view s, int indent, bool allow_breaks) {
    Put("\"");
    bool bom = s.size() >= 3 && s.substr(0, 3) == "\xEF\xBB\xBF";
    bool spaces = false;
    for (size_t i = 0; i < s.size();) {
      unsigned char c = s[i];
      int w = Width(c);
      if (i + w > s.size()) w = static_cast<int>(s.size() - i);
      if (!IsPrintable(s, i) || bom || IsBreak(s, i) || c == '"' || c == '\\') {
        uint32_t v = w == 1 ? c : (c & (0xFF >> (w + 1)));
        for (int k = 1; k < w; ++k) v = (v << 6) | (s[i + k] & 0x3F);
        Escape(v);
        spaces = false;
      } else if (c == ' ') {
        if (allow_breaks && !spaces && column_ > kBestWidth && i != 0 &&
            i != s.size() - 1) {
          Fold(indent);
          if (IsSpace(s, i + 1)) Put("\\");
        } else {
          Put(" ");
        }
        spaces = true;
      } else {
        Put(s.substr(i, w));
        spaces = false;
      }
      i += w;
    }
    Put("\"");
  }

  void Escape(uint32_t v) {
    switch (v) {
      case 0x00:
        Put("\\0");
        return;
      case 0x07:
        Put("\\a");
        return;
      case 0x08:
        Put("\\b");
        return;
      case 0x09:
        Put("\\t");
        return;
      case 0x0A:
        Put("\\n");
        return;
      case 0x0B:
        Put("\\v");
        return;
      case 0x0C:
        Put("\\f");
        return;
      case 0x0D:
        Put("\\r");
        return;
      case 0x1B:
        Put("\\e");
        return;
      case 0x22:
        Put("\\\"");
        return;
      case 0x5C:
        Put("\\\\");
        return;
      case 0x85:
        Put("\\N");
        return;
      case 0xA0:
        Put("\\_");
        return;
      case 0x2028:
        Put("\\L");
        return;
      case 0x2029:
        Put("\\P");
        return;
      default:
        break;
    }
    char buf[16];
    if (v <= 0xFF) {
      snprintf(buf, sizeof(buf), "\\x%02X", v);
    } else if (v <= 0xFFFF) {
      snprintf(buf, sizeof(buf), "\\u%04X", v);
    } else {
      snprintf(buf, sizeof(buf), "\\U%08X", v);
    }
    Put(buf);
  }

  void Literal(absl::string_view s, int indent) {
    Put("|");
    if (IsSpace(s, 0) || IsBreak(s, 0)) Put("2");
    size_t last = s.size() - 1;
    while (last > 0 && (static_cast<unsigned char>(s[last]) & 0xC0) == 0x80) {
      --last;
    }
    if (!IsBreak(s, last)) {
      Put("-");
    } else if (last == 0) {
      Put("+");
    } else {
      size_t prev = last - 1;
      while (prev > 0 && (static_cast<unsigned char>(s[prev]) & 0xC0) == 0x80) {
        --prev;
      }
      if (IsBreak(s, prev)) Put("+");
    }
    Newline();
    bool breaks = true;
    for (size_t i = 0; i < s.size();) {
      int w = Width(s[i]);
      if (IsBreak(s, i)) {
        Newline();
        breaks = true;
      } else {
        if (breaks) Indent(indent);
        breaks = false;
        Put(s.substr(i, w));
      }
      i += w;
    }
  }

  std::string out_;
  int column_ = 0;
};

}  // namespace

std::string EmitDocument(const Value& doc) {
  Emitter e;
  e.Document(doc);
  return e.Take();
}

std::string EmitStream(const std::vector<Value>& docs) {
  std::string out;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i > 0) out += "---\n";
    out += EmitDocument(docs[i]);
  }
  return out;
}

}  // namespace kiln::render
