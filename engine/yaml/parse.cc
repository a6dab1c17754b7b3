#include "engine/yaml/parse.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/yaml/deep_stack.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/parser.h"

namespace kiln::yaml {
namespace {

Mark ToMark(const YAML::Mark& m) { return Mark{m.line + 1, m.column + 1}; }

// Thrown from the event handler to abort parsing; caught in Run().
struct Abort {
  absl::Status status;
};

// yaml-cpp accepts a quoted scalar that the end of the input cuts off
// ("abc<EOF>) as if it were closed. A quoted scalar starts at its quote;
// unless a closing quote follows (\" escapes in double quotes, '' in single
// quotes), the input ended inside it.
bool QuotedScalarIsClosed(absl::string_view text, size_t start) {
  if (start >= text.size()) return true;
  const char q = text[start];
  if (q != '"' && q != '\'') return true;  // block scalar: nothing to close
  for (size_t i = start + 1; i < text.size(); ++i) {
    if (q == '"' && text[i] == '\\') {
      ++i;  // the escaped character
      continue;
    }
    if (text[i] != q) continue;
    if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
      ++i;  // '' is an escaped quote
      continue;
    }
    return true;
  }
  return false;
}

class TreeBuilder : public YAML::EventHandler {
 public:
  TreeBuilder(absl::string_view filename, const Limits& limits,
              absl::string_view text)
      : filename_(filename), limits_(limits), text_(text) {}

  void OnDocumentStart(const YAML::Mark&) override {
    stack_.clear();
    flow_depth_ = 0;
    keys_.clear();
    anchors_.clear();
    root_ = Node();
    have_root_ = false;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // Inside a flow collection, a null that is not spelled `~`/`null` was
    // written as nothing (`{a: }`, `{a}`, `[a: ]`).
    if (flow_depth_ > 0 && !NullLiteralAt(mark.pos)) {
      Add(Node::EmptyInFlow(ToMark(mark)), anchor);
      return;
    }
    Add(Node::Null(ToMark(mark)), anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Mark m = ToMark(mark);
    if (!limits_.allow_aliases) Fail(m, "aliases are not allowed here");
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      Fail(m, "alias refers to an anchor that is not complete (recursive)");
    }
    Charge(m, it->second.second);
    alias_nodes_ += it->second.second;
    if (alias_nodes_ > limits_.max_alias_nodes) {
      Fail(m,
           absl::StrCat("aliases expand to more than ", limits_.max_alias_nodes,
                        " nodes"),
           absl::StatusCode::kResourceExhausted);
    }
    Node copy = it->second.first;
    Add(std::move(copy), 0, /*counted=*/true);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag,
                YAML::anchor_t anchor, const std::string& value) override {
    Mark m = ToMark(mark);
    if (value.size() > limits_.max_scalar_bytes) {
      Fail(m,
           absl::StrCat("scalar of ", value.size(),
                        " bytes exceeds the limit of ",
                        limits_.max_scalar_bytes),
           absl::StatusCode::kResourceExhausted);
    }
    bool quoted = tag == "!";
    if (quoted) CheckQuoteClosed(mark, m);
    std::string explicit_tag = (tag == "!" || tag == "?") ? "" : tag;
    Add(Node::Scalar(m, value, quoted, explicit_tag), anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&,
                       YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    Open(Node::Sequence(ToMark(mark), style == YAML::EmitterStyle::Flow),
         anchor);
    if (style == YAML::EmitterStyle::Flow) ++flow_depth_;
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&,
                  YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    Open(Node::Mapping(ToMark(mark), style == YAML::EmitterStyle::Flow),
         anchor);
    if (style == YAML::EmitterStyle::Flow) ++flow_depth_;
  }
  void OnMapEnd() override { Close(); }

  // The text being parsed (for checks yaml-cpp does not make).

  bool have_root() const { return have_root_; }
  Node TakeRoot() { return std::move(root_); }

  [[noreturn]] void Fail(
      Mark m, const std::string& msg,
      absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
    throw Abort{absl::Status(
        code, absl::StrCat(filename_, ":", m.line, ":", m.column, ": ", msg))};
  }

 private:
  void CheckQuoteClosed(const YAML::Mark& mark, Mark m) {
    if (mark.pos < 0) return;
    if (!QuotedScalarIsClosed(text_, static_cast<size_t>(mark.pos))) {
      Fail(m, absl::StrCat("unterminated quoted string (no closing ",
                           text_[mark.pos] == '"' ? "\"" : "'",
                           " before the end of the file)"));
    }
  }

  struct Open_ {
    Node node;
    YAML::anchor_t anchor;
    size_t nodes_at_start;
    std::unordered_map<std::string, int> key_lines;  // mappings only
  };

  void Charge(Mark m, size_t n) {
    nodes_ += n;
    if (nodes_ > limits_.max_nodes) {
      Fail(m,
           absl::StrCat("more than ", limits_.max_nodes,
                        " nodes (after expanding aliases)"),
           absl::StatusCode::kResourceExhausted);
    }
  }

  void Open(Node node, YAML::anchor_t anchor) {
    Charge(node.mark(), 1);
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      Fail(node.mark(),
           absl::StrCat("nesting deeper than ", limits_.max_depth, " levels"),
           absl::StatusCode::kResourceExhausted);
    }
    stack_.push_back(Open_{std::move(node), anchor, nodes_, {}});
    keys_.emplace_back();
  }

  // yaml-cpp's null spellings (IsNullString), at a byte offset of the text.
  bool NullLiteralAt(int pos) const {
    if (pos < 0 || static_cast<size_t>(pos) >= text_.size()) return false;
    absl::string_view rest = text_.substr(pos);
    for (absl::string_view lit : {"~", "null", "Null", "NULL"}) {
      if (absl::StartsWith(rest, lit)) return true;
    }
    return false;
  }

  void Close() {
    Open_ top = std::move(stack_.back());
    if (top.node.flow() && flow_depth_ > 0) --flow_depth_;
    stack_.pop_back();
    keys_.pop_back();
    size_t size = nodes_ - top.nodes_at_start + 1;
    Add(std::move(top.node), top.anchor, /*counted=*/true, size);
  }

  // Attaches a finished node to its parent (or makes it the root).
  void Add(Node node, YAML::anchor_t anchor, bool counted = false,
           size_t size = 1) {
    if (!counted) Charge(node.mark(), 1);
    if (anchor != 0) anchors_[anchor] = {node, size};
    if (stack_.empty()) {
      root_ = std::move(node);
      have_root_ = true;
      return;
    }
    Node& parent = stack_.back().node;
    if (parent.IsSequence()) {
      parent.mutable_items().push_back(std::move(node));
      return;
    }
    // Mapping: alternate key, value.
    std::optional<Node>& pending = keys_.back();
    if (!pending.has_value()) {
      if (!node.IsScalar() && !node.IsNull()) {
        Fail(node.mark(), "mapping keys must be scalars");
      }
      auto [it, inserted] =
          stack_.back().key_lines.emplace(node.value(), node.mark().line);
      if (!inserted) {
        Fail(node.mark(), absl::StrCat("duplicate key \"", node.value(),
                                       "\" (first at line ", it->second, ")"));
      }
      pending = std::move(node);
      return;
    }
    parent.mutable_entries().emplace_back(std::move(*pending), std::move(node));
    pending.reset();
  }

  std::string filename_;
  const Limits& limits_;
  absl::string_view text_;
  int flow_depth_ = 0;  // open flow collections
  std::vector<Open_> stack_;
  std::vector<std::optional<Node>> keys_;
  std::map<YAML::anchor_t, std::pair<Node, size_t>> anchors_;
  Node root_;
  bool have_root_ = false;
  size_t nodes_ = 0;
  size_t alias_nodes_ = 0;  // of nodes_, added by aliases
};

// YAML's printable set (c-printable): tab, LF, CR, x20-x7E, x85,
// xA0-xD7FF, xE000-xFFFD, x10000-x10FFFF.
bool Printable(uint32_t cp) {
  return cp == 0x09 || cp == 0x0A || cp == 0x0D || (cp >= 0x20 && cp <= 0x7E) ||
         cp == 0x85 || (cp >= 0xA0 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

// Position of the first byte that does not start a well-formed UTF-8
// sequence of a printable character (overlong forms, surrogates, control
// characters such as NUL included), or npos.
size_t FirstInvalidUtf8(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (!Printable(c)) return i;
      ++i;
      continue;
    }
    int len;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || !Printable(cp)) return i;
    i += len;
  }
  return absl::string_view::npos;
}

struct Job {
  absl::string_view text;
  absl::string_view filename;
  const Limits* limits;
  bool all;
  absl::Status status;
  std::vector<Node> docs;
};

void RunJob(Job* job) {
  std::string text(job->text);
  // A UTF-8 byte order mark is accepted and ignored.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  // YAML is Unicode text: reject malformed UTF-8 up front, with position.
  if (size_t bad = FirstInvalidUtf8(text); bad != absl::string_view::npos) {
    int line = 1, column = 1;
    for (size_t k = 0; k < bad; ++k) {
      if (text[k] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) {
        ++column;
      }
    }
    job->status = absl::InvalidArgumentError(absl::StrFormat(
        "%s:%d:%d: invalid character (byte 0x%02X): YAML must be printable "
        "UTF-8",
        job->filename, line, column, static_cast<unsigned char>(text[bad])));
    return;
  }
  std::istringstream in(text);
  TreeBuilder builder(job->filename, *job->limits, text);
  try {
    YAML::Parser parser(in);
    size_t docs = 0;
    while (parser.HandleNextDocument(builder)) {
      if (++docs > job->limits->max_documents) {
        job->status = absl::ResourceExhaustedError(
            absl::StrCat(job->filename, ": more than ",
                         job->limits->max_documents, " documents"));
        return;
      }
      if (!builder.have_root()) continue;
      Node root = builder.TakeRoot();
      if (!job->all && !job->docs.empty()) {
        builder.Fail(root.mark(), "a second YAML document is not allowed here");
      }
      if (job->all && root.IsNull()) continue;
      job->docs.push_back(std::move(root));
    }
  } catch (const Abort& a) {
    job->status = a.status;
  } catch (const YAML::Exception& e) {
    job->status = absl::InvalidArgumentError(
        absl::StrCat(job->filename, ":", e.mark.line + 1, ":",
                     e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    job->status =
        absl::InvalidArgumentError(absl::StrCat(job->filename, ": ", e.what()));
  }
}

absl::Status RunOnBigStack(Job* job) {
  if (job->text.size() > job->limits->max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(job->filename, ": file of ", job->text.size(),
                     " bytes exceeds the limit of ", job->limits->max_bytes));
  }
  absl::Status started =
      RunOnDeepStack([job] { RunJob(job); }, job->text.size());
  if (!started.ok()) return started;
  return job->status;
}

}  // namespace

absl::StatusOr<Node> Parse(absl::string_view text, absl::string_view filename,
                           const Limits& limits) {
  Job job{text, filename, &limits, false, absl::OkStatus(), {}};
  absl::Status s = RunOnBigStack(&job);
  if (!s.ok()) return s;
  if (job.docs.empty()) return Node::Null(Mark{1, 1});
  return std::move(job.docs.front());
}

absl::StatusOr<std::vector<Node>> ParseAll(absl::string_view text,
                                           absl::string_view filename,
                                           const Limits& limits) {
  Job job{text, filename, &limits, true, absl::OkStatus(), {}};
  absl::Status s = RunOnBigStack(&job);
  if (!s.ok()) return s;
  return std::move(job.docs);
}

absl::StatusOr<std::string> ReadFileCapped(const std::string& path,
                                           size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    std::string msg = absl::StrCat(path, ": ", strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg)
                         : absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    close(fd);
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": file of ", st.st_size,
                     " bytes exceeds the limit of ", max_bytes));
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, n);
    if (out.size() > max_bytes) {
      close(fd);
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": file exceeds the limit of ", max_bytes));
    }
  }
  close(fd);
  return out;
}

}  // namespace kiln::yaml
