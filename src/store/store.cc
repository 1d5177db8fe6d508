#include "store/store.h"

#include <string>

namespace signet::store {

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kActive:
      return "active";
    case KeyState::kDisabled:
      return "disabled";
    case KeyState::kDestroyed:
      return "destroyed";
  }
  return "unknown";
}

Result<KeyState> ParseKeyState(std::string_view name) {
  if (name == "active") return KeyState::kActive;
  if (name == "disabled") return KeyState::kDisabled;
  if (name == "destroyed") return KeyState::kDestroyed;
  return InvalidArgument("unknown key state '" + std::string(name) +
                         "': expected active, disabled or destroyed");
}

}  // namespace signet::store
