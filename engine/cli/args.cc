#include "engine/cli/args.h"

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kiln::cli {

void Args::Flag(const std::string& name, std::string help) {
  specs_[name] = Spec{Type::kValue, std::move(help)};
}
void Args::Repeated(const std::string& name, std::string help) {
  specs_[name] = Spec{Type::kRepeated, std::move(help)};
}
void Args::Bool(const std::string& name, std::string help) {
  specs_[name] = Spec{Type::kBool, std::move(help)};
}

std::string Args::Help() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n");
  if (!specs_.empty()) out += "\nflags:\n";
  for (const auto& [name, spec] : specs_) {
    std::string left = absl::StrCat("  --", name);
    if (spec.type != Type::kBool) left += " VALUE";
    if (left.size() < 26) left.resize(26, ' ');
    absl::StrAppend(&out, left, " ", spec.help,
                    spec.type == Type::kRepeated ? " (repeatable)" : "", "\n");
  }
  absl::StrAppend(&out, "  --help                   print this help\n");
  return out;
}

int Args::UsageError(const std::string& message) const {
  std::fprintf(stderr, "kiln: %s\n%s", message.c_str(), Help().c_str());
  return 2;
}

bool Args::Parse(const std::vector<std::string>& args, int* exit_code) {
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positionals || a == "-" || !absl::StartsWith(a, "-")) {
      positionals_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      std::fputs(Help().c_str(), stdout);
      *exit_code = 0;
      return false;
    }
    std::string name = a.substr(absl::StartsWith(a, "--") ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) {
      *exit_code = UsageError(absl::StrCat("unknown flag --", name));
      return false;
    }
    if (it->second.type == Type::kBool) {
      if (has_value && value != "true" && value != "false") {
        *exit_code = UsageError(absl::StrCat("--", name, " takes no value"));
        return false;
      }
      if (!has_value || value == "true") {
        values_[name] = {"true"};
      } else {
        values_.erase(name);
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        *exit_code = UsageError(absl::StrCat("--", name, " needs a value"));
        return false;
      }
      value = args[++i];
    }
    if (it->second.type == Type::kValue) {
      values_[name] = {value};
    } else {
      values_[name].push_back(value);
    }
  }
  return true;
}

std::string Args::Get(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? def : it->second.back();
}

absl::Status Args::IntFlag(const std::string& name, int64_t min, int64_t max,
                           int64_t* out) const {
  if (!Has(name)) return absl::OkStatus();
  int64_t v = 0;
  if (!absl::SimpleAtoi(Get(name), &v) || v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be a whole number from ", min, " to ",
                     max, " (got '", Get(name), "')"));
  }
  *out = v;
  return absl::OkStatus();
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace kiln::cli
