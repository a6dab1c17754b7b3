// Bounds of a pipeline's `notify:` entries (checked by the loader, applied
// by the notifier).
#ifndef KILN_ENGINE_NOTIFY_LIMITS_H_
#define KILN_ENGINE_NOTIFY_LIMITS_H_

#include <cstddef>

#include "absl/time/time.h"

namespace kiln::notify {

inline constexpr int kMaxNotifications = 16;
inline constexpr size_t kMaxTemplateBytes = 16 << 10;
inline constexpr size_t kMaxUrlBytes = 4096;
// The whole delivery of one notification, retries included. Notifications
// are posted in parallel, so this also bounds how long they hold a run.
inline constexpr absl::Duration kDefaultNotifyTimeout = absl::Seconds(30);
inline constexpr absl::Duration kMaxNotifyTimeout = absl::Minutes(5);
inline constexpr unsigned kDefaultNotifyRetries = 3;
inline constexpr unsigned kMaxNotifyRetries = 10;

}  // namespace kiln::notify

#endif  // KILN_ENGINE_NOTIFY_LIMITS_H_
