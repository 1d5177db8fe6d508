#include "cli/qr_terminal.h"

#include <qrencode.h>

#include <cerrno>
#include <memory>

#include "common/bytes.h"

namespace signet::cli {
namespace {

constexpr int kQuietZone = 4;

// The code's modules encode the text (a TOTP secret, for the bootstrap admin): wiped before
// libqrencode frees them.
struct QrDeleter {
  void operator()(QRcode* code) const {
    if (code->data != nullptr && code->width > 0) {
      SecureWipe(code->data, static_cast<size_t>(code->width) * static_cast<size_t>(code->width));
    }
    QRcode_free(code);
  }
};

}  // namespace

Result<std::string> RenderQrForTerminal(std::string_view text) {
  std::string input(text);  // libqrencode wants a NUL-terminated string
  errno = 0;
  std::unique_ptr<QRcode, QrDeleter> code(QRcode_encodeString8bit(input.c_str(), 0, QR_ECLEVEL_M));
  const int encode_errno = errno;
  SecureWipe(input.data(), input.size());  // the text may hold a secret (an otpauth:// URI)
  errno = encode_errno;
  if (code == nullptr) {
    if (errno == ERANGE) return InvalidArgument("text too long for a QR code");
    return InternalError("libqrencode could not encode the text");
  }
  const int width = code->width;
  const int size = width + 2 * kQuietZone;
  // Bit 0 of each module byte is 1 for a dark module; the quiet zone is light.
  auto dark = [&](int row, int col) {
    row -= kQuietZone;
    col -= kQuietZone;
    if (row < 0 || col < 0 || row >= width || col >= width) return false;
    return (code->data[row * width + col] & 1) != 0;
  };
  // Sized once, so that no partial drawing of the code is left behind in freed memory (each
  // cell is at most one 3-byte block character; one newline per line).
  std::string out;
  out.reserve(static_cast<size_t>(size) * static_cast<size_t>(size / 2 + 1) * 3 +
              static_cast<size_t>(size / 2 + 1));
  for (int row = 0; row < size; row += 2) {
    for (int col = 0; col < size; ++col) {
      bool top_ink = !dark(row, col);
      bool bottom_ink = row + 1 < size ? !dark(row + 1, col) : false;
      if (top_ink && bottom_ink) {
        out += "\u2588";  // █
      } else if (top_ink) {
        out += "\u2580";  // ▀
      } else if (bottom_ink) {
        out += "\u2584";  // ▄
      } else {
        out += ' ';
      }
    }
    out += '\n';
  }
  return out;
}

}  // namespace signet::cli
