// QR codes drawn with text, for showing an otpauth:// enrolment URI in a terminal or a text file.
// libqrencode is used only in qr_terminal.cc (linked privately). Pure function, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace signet::cli {

// Encodes `text` (8-bit mode, error correction level M) and draws it with the half-block
// characters "▀", "▄", "█" and space, two module rows per line, inside a 4-module quiet zone.
// Like `qrencode -t UTF8`, the light modules (and the quiet zone) are drawn as ink, so the code
// reads correctly on the usual dark terminal background. Lines end in '\n'. InvalidArgument if
// the text is too long for a QR code; Internal if libqrencode fails otherwise.
Result<std::string> RenderQrForTerminal(std::string_view text);

}  // namespace signet::cli
