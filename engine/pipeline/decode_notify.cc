// The pipeline's `notify:` list (Pipeline.notify): webhook notifications
// posted when a run ends. Types and spellings here; URLs, templates and
// bounds are checked by validation (validate_notify.cc).
#include "engine/notify/limits.h"
#include "engine/pipeline/decode.h"

namespace kiln::pipeline::internal {
namespace {

const EnumNames& NotifyOutcomes() {
  static const auto* names =
      new EnumNames{{"failed", v1::Notification::FAILED},
                    {"succeeded", v1::Notification::SUCCEEDED},
                    {"fixed", v1::Notification::FIXED},
                    {"broken", v1::Notification::BROKEN},
                    {"cancelled", v1::Notification::CANCELLED}};
  return *names;
}

void DecodeNotification(Decoder* d, const Node& node, const std::string& path,
                        v1::Notification* out) {
  Fields f(d, node, path, {"url", "on", "template", "timeout", "retries"});
  if (const Node* n = f.Get("url")) {
    d->String(*n, f.PathOf("url"), out->mutable_url());
  }
  if (const Node* n = f.Get("on")) {
    const std::string on_path = f.PathOf("on");
    // `on: failed` is read as `on: [failed]`.
    if (n->IsScalar()) {
      int on = 0;
      if (d->Enum(*n, on_path, NotifyOutcomes(), "notification outcome", &on)) {
        out->add_on(static_cast<v1::Notification::Outcome>(on));
      }
    } else if (d->ExpectSequence(*n, on_path)) {
      for (size_t i = 0; i < n->items().size(); ++i) {
        int on = 0;
        if (d->Enum(n->items()[i], Index(on_path, i), NotifyOutcomes(),
                    "notification outcome", &on)) {
          out->add_on(static_cast<v1::Notification::Outcome>(on));
        }
      }
    }
  }
  if (const Node* n = f.Get("template")) {
    d->String(*n, f.PathOf("template"), out->mutable_template_());
  }
  if (const Node* n = f.Get("timeout")) {
    d->Duration(*n, f.PathOf("timeout"), out->mutable_timeout());
  }
  uint64_t retries = 0;
  if (const Node* n = f.Get("retries");
      n &&
      d->Uint(*n, f.PathOf("retries"), notify::kMaxNotifyRetries, &retries)) {
    out->set_retries(static_cast<uint32_t>(retries));
  }
}

}  // namespace

void DecodeNotify(Decoder* d, const Node& node, const std::string& path,
                  google::protobuf::RepeatedPtrField<v1::Notification>* out) {
  if (!d->ExpectSequence(node, path)) return;
  for (size_t i = 0; i < node.items().size(); ++i) {
    DecodeNotification(d, node.items()[i], Index(path, i), out->Add());
  }
}

}  // namespace kiln::pipeline::internal
