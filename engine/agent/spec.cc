#include "engine/agent/spec.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cas/digest.h"
#include "nlohmann/json.hpp"

namespace kiln::agent {
namespace {

using nlohmann::json;

absl::Status Want(bool ok, absl::string_view field, absl::string_view what) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("spec: ", field, ": want ", what));
}

absl::StatusOr<std::string> String(const json& obj, const char* key,
                                   const std::string& where, bool required) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec: ", where, ".", key, ": missing"));
    }
    return std::string();
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", where, ".", key, ": want a string"));
  }
  return it->get<std::string>();
}

absl::Status Digest(const std::string& text, const std::string& where) {
  absl::StatusOr<cas::Digest> d = cas::Digest::Parse(text);
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", where, ": ", d.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AgentSpec> ParseSpec(absl::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("spec: not a JSON object");
  }
  auto v = doc.find("v");
  if (v == doc.end() || !v->is_number_integer() || v->get<int64_t>() != 1) {
    return absl::InvalidArgumentError(
        "spec: v: want 1 (this agent speaks spec version 1)");
  }
  AgentSpec spec;
  if (auto in = doc.find("inputs"); in != doc.end()) {
    if (absl::Status s = Want(in->is_array(), "inputs", "an array"); !s.ok()) {
      return s;
    }
    for (size_t i = 0; i < in->size(); ++i) {
      const json& e = (*in)[i];
      std::string where = absl::StrCat("inputs[", i, "]");
      if (!e.is_object()) return Want(false, where, "an object");
      InputSpec input;
      for (auto [key, field, required] :
           {std::make_tuple("artifact", &input.artifact, true),
            std::make_tuple("tree", &input.tree, true),
            std::make_tuple("archive", &input.archive, true),
            std::make_tuple("path", &input.path, false)}) {
        absl::StatusOr<std::string> s = String(e, key, where, required);
        if (!s.ok()) return s.status();
        *field = std::move(*s);
      }
      if (absl::Status s = Digest(input.tree, where + ".tree"); !s.ok()) {
        return s;
      }
      if (absl::Status s = Digest(input.archive, where + ".archive"); !s.ok()) {
        return s;
      }
      spec.inputs.push_back(std::move(input));
    }
  }
  if (auto out = doc.find("outputs"); out != doc.end()) {
    if (absl::Status s = Want(out->is_array(), "outputs", "an array");
        !s.ok()) {
      return s;
    }
    for (size_t i = 0; i < out->size(); ++i) {
      const json& e = (*out)[i];
      std::string where = absl::StrCat("outputs[", i, "]");
      if (!e.is_object()) return Want(false, where, "an object");
      OutputSpec output;
      absl::StatusOr<std::string> name = String(e, "artifact", where, true);
      if (!name.ok()) return name.status();
      output.artifact = std::move(*name);
      auto paths = e.find("paths");
      if (paths == e.end() || !paths->is_array()) {
        return Want(false, where + ".paths", "an array of strings");
      }
      for (const json& p : *paths) {
        if (!p.is_string()) {
          return Want(false, where + ".paths", "an array of strings");
        }
        output.paths.push_back(p.get<std::string>());
      }
      spec.outputs.push_back(std::move(output));
    }
  }
  for (auto [key, field] : {std::make_pair("report", &spec.report),
                            std::make_pair("workdir", &spec.workdir)}) {
    absl::StatusOr<std::string> s = String(doc, key, "spec", false);
    if (!s.ok()) return s.status();
    *field = std::move(*s);
  }
  if (auto t = doc.find("timeout_ms"); t != doc.end()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 0) {
      return Want(false, "timeout_ms", "a non-negative integer");
    }
    spec.timeout_ms = t->get<int64_t>();
  }
  return spec;
}

namespace {

json ToJson(const AgentResult& r) {
  json out = json::object();
  out["v"] = 1;
  out["status"] = r.status;
  out["exit_code"] = r.exit_code;
  out["signal"] = r.signal;
  out["message"] = r.message;
  json outputs = json::object();
  for (const auto& [name, ref] : r.outputs) {
    outputs[name] = {{"tree", ref.tree}, {"archive", ref.archive}};
  }
  out["outputs"] = outputs;
  if (r.has_report) {
    out["report"] = {{"tree", r.report.tree}, {"archive", r.report.archive}};
  }
  out["warnings"] = r.warnings;
  return out;
}

// Cuts `s` to at most `n` bytes without splitting a UTF-8 sequence.
void Shorten(std::string* s, size_t n) {
  if (s->size() <= n) return;
  size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>((*s)[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  s->resize(cut);
  s->append("...");
}

}  // namespace

std::string ResultJson(AgentResult result) {
  std::string text =
      ToJson(result).dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() <= kMaxResultBytes) return text;
  // Warnings first, then the message, are shortened; the digests are not.
  while (!result.warnings.empty() && text.size() > kMaxResultBytes) {
    result.warnings.pop_back();
    text = ToJson(result).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (text.size() > kMaxResultBytes) {
    size_t over = text.size() - kMaxResultBytes;
    if (result.message.size() > over + 16) {
      Shorten(&result.message, result.message.size() - over - 16);
      text =
          ToJson(result).dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  if (text.size() <= kMaxResultBytes) return text;
  AgentResult failed;
  failed.status = "OUTPUTS_FAILED";
  failed.exit_code = result.exit_code;
  failed.message =
      absl::StrCat("the result (", result.outputs.size(),
                   " outputs) does not fit the 4096-byte termination message");
  return ToJson(failed).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace kiln::agent
