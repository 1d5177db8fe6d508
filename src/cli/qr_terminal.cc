#include "cli/qr_terminal.h"

#include <qrencode.h>

#include <cerrno>
#include <memory>

namespace signet::cli {
namespace {

constexpr int kQuietZone = 4;

struct QrDeleter {
  void operator()(QRcode* code) const { QRcode_free(code); }
};

}  // namespace

Result<std::string> RenderQrForTerminal(std::string_view text) {
  std::string input(text);  // libqrencode wants a NUL-terminated string
  errno = 0;
  std::unique_ptr<QRcode, QrDeleter> code(QRcode_encodeString8bit(input.c_str(), 0, QR_ECLEVEL_M));
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
  std::string out;
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
