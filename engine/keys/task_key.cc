#include "engine/keys/task_key.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/sha256.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace kiln {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kKeyVersion[] = "kiln.task-key.v2";
constexpr size_t kSummaryMax = 200;

// Canonical encoding: every value is prefixed with a type byte and, for
// variable-length values, its length, so no two different values encode
// alike.
class Encoder {
 public:
  void String(absl::string_view s) {
    out_.push_back('s');
    Length(s.size());
    out_.append(s.data(), s.size());
  }
  void Int(int64_t v) { absl::StrAppend(&out_, "i", v, ";"); }
  void Bool(bool v) { out_.append(v ? "b1" : "b0"); }
  void Count(size_t n) { absl::StrAppend(&out_, "n", n, ";"); }
  void Begin() { out_.push_back('{'); }
  void End() { out_.push_back('}'); }
  void Length(size_t n) { absl::StrAppend(&out_, n, ":"); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

void EncodeMessage(const Message& m, Encoder* e, std::string* summary);

bool IsEnvList(const FieldDescriptor* f) {
  return f->is_repeated() && f->type() == FieldDescriptor::TYPE_MESSAGE &&
         f->message_type()->full_name() == "kiln.v1.EnvVar";
}

void Summarize(std::string* summary, absl::string_view text) {
  if (summary == nullptr || summary->size() >= kSummaryMax) return;
  summary->append(text.data(), text.size());
  if (summary->size() > kSummaryMax) {
    summary->resize(kSummaryMax - 3);
    summary->append("...");
  }
}

void EncodeScalar(const Message& m, const Reflection* r,
                  const FieldDescriptor* f, int index, Encoder* e,
                  std::string* summary) {
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v =
          rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      e->String(v);
      Summarize(summary, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v = rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
      e->Bool(v);
      Summarize(summary, v ? "true" : "false");
      break;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int v =
          rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      e->Int(v);
      const auto* ev = f->enum_type()->FindValueByNumber(v);
      Summarize(summary, ev ? ev->name() : absl::StrCat(v));
      break;
    }
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      int64_t v = 0;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          v = rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          v = rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          v = rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
          break;
        default:
          v = static_cast<int64_t>(rep ? r->GetRepeatedUInt64(m, f, index)
                                       : r->GetUInt64(m, f));
      }
      e->Int(v);
      Summarize(summary, absl::StrCat(v));
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Message& sub =
          rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f);
      EncodeMessage(sub, e, summary);
      break;
    }
    default:  // floats: none in kiln's specs; encode as text to be safe.
      e->String(f->name());
  }
}

// Encodes one field (repeated or not) of m.
void EncodeField(const Message& m, const FieldDescriptor* f, Encoder* e,
                 std::string* summary) {
  const Reflection* r = m.GetReflection();
  if (!f->is_repeated()) {
    EncodeScalar(m, r, f, 0, e, summary);
    return;
  }
  int n = r->FieldSize(m, f);
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  if (IsEnvList(f)) {
    // The environment is a set: order by name (then value).
    std::vector<std::pair<std::string, std::string>> env;
    for (int i = 0; i < n; ++i) {
      const Message& ev = r->GetRepeatedMessage(m, f, i);
      const auto* d = ev.GetDescriptor();
      env.emplace_back(
          ev.GetReflection()->GetString(ev, d->FindFieldByName("name")),
          ev.GetReflection()->GetString(ev, d->FindFieldByName("value")));
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return env[a] < env[b]; });
  }
  e->Count(n);
  Summarize(summary, "[");
  for (int i = 0; i < n; ++i) {
    if (i > 0) Summarize(summary, ", ");
    EncodeScalar(m, r, f, order[i], e, summary);
  }
  Summarize(summary, "]");
}

void EncodeMessage(const Message& m, Encoder* e, std::string* summary) {
  const auto* d = m.GetDescriptor();
  e->Begin();
  Summarize(summary, "{");
  bool first = true;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    // Set: a repeated field with elements, a singular one with a value
    // (for a proto3 scalar without presence, HasField means "not the
    // default").
    bool present = f->is_repeated() ? m.GetReflection()->FieldSize(m, f) > 0
                                    : m.GetReflection()->HasField(m, f);
    if (!present) continue;  // unset fields add nothing (format v2)
    e->Int(f->number());
    if (!first) Summarize(summary, ", ");
    first = false;
    Summarize(summary, absl::StrCat(f->name(), ": "));
    EncodeField(m, f, e, summary);
  }
  Summarize(summary, "}");
  e->End();
}

}  // namespace

TaskKey ComputeTaskKey(const TaskKeyInputs& in) {
  TaskKey key;
  auto add = [&key](std::string name, const Encoder& e, std::string summary) {
    key.components.push_back(KeyComponent{std::move(name), HexSha256(e.bytes()),
                                          std::move(summary)});
  };
  const v1::Task& task = *in.task;
  const auto* kind_field = task.GetReflection()->GetOneofFieldDescriptor(
      task, task.GetDescriptor()->FindOneofByName("kind"));
  std::string kind = kind_field ? kind_field->name() : "none";
  {
    Encoder e;
    e.String(kind);
    add("kind", e, kind);
  }
  if (kind_field != nullptr) {
    const Message& spec = task.GetReflection()->GetMessage(task, kind_field);
    const auto* d = spec.GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      Encoder e;
      std::string summary;
      bool present = f->is_repeated()
                         ? spec.GetReflection()->FieldSize(spec, f) > 0
                         : spec.GetReflection()->HasField(spec, f);
      if (!present) continue;  // unset fields add nothing (format v2)
      EncodeField(spec, f, &e, &summary);
      add(absl::StrCat(kind, ".", f->name()), e, summary);
    }
  }
  {
    Encoder e;
    std::string summary;
    e.Count(task.inputs_size());
    for (int i = 0; i < task.inputs_size(); ++i) {
      const auto& input = task.inputs(i);
      std::string digest;
      for (const auto& [name, d] : in.input_digests) {
        if (name == input.artifact()) digest = d;
      }
      e.String(input.artifact());
      e.String(input.path());
      e.String(digest);
      Summarize(&summary, absl::StrCat(i ? ", " : "", input.artifact(), "=",
                                       digest.substr(0, 19)));
    }
    add("inputs", e, summary);
  }
  {
    Encoder e;
    std::string summary;
    e.Count(task.outputs_size());
    for (const auto& output : task.outputs()) {
      e.String(output.artifact());
      e.Count(output.paths_size());
      for (const auto& p : output.paths()) e.String(p);
      Summarize(&summary,
                absl::StrCat(output.artifact(), ":[",
                             absl::StrJoin(output.paths(), ","), "] "));
    }
    add("outputs", e, summary);
  }
  {
    Encoder e;
    e.String(in.platform);
    add("platform", e, in.platform);
  }
  Encoder all;
  all.String(kKeyVersion);
  all.Count(key.components.size());
  for (const auto& c : key.components) {
    all.String(c.name);
    all.String(c.digest);
  }
  key.key = absl::StrCat("sha256:", HexSha256(all.bytes()));
  return key;
}

std::string HmacToken(absl::string_view key, absl::string_view value) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(value.data()), value.size(), out,
       &len);
  return absl::StrCat("hmac-sha256:",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(out), len)));
}

std::vector<std::string> ExplainKeyChange(
    const std::vector<KeyComponent>& before,
    const std::vector<KeyComponent>& now) {
  std::map<std::string, const KeyComponent*> old_by_name;
  for (const auto& c : before) old_by_name[c.name] = &c;
  std::vector<std::string> lines;
  for (const auto& c : now) {
    auto it = old_by_name.find(c.name);
    if (it == old_by_name.end()) {
      lines.push_back(absl::StrCat(c.name, " added: ", c.summary));
      continue;
    }
    if (it->second->digest != c.digest) {
      lines.push_back(absl::StrCat(c.name, " changed: ", it->second->summary,
                                   " -> ", c.summary));
    }
    old_by_name.erase(it);
  }
  for (const auto& [name, c] : old_by_name) {
    lines.push_back(absl::StrCat(name, " removed (was ", c->summary, ")"));
  }
  return lines;
}

}  // namespace kiln
