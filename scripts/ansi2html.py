#!/usr/bin/env python3
"""Turn `tmux capture-pane -e` output (ANSI SGR colours) into a standalone HTML page.

Usage: ansi2html.py TITLE < capture.txt > page.html
Only SGR sequences are understood: that is all capture-pane emits.
"""
import html
import re
import sys

BASE16 = [
    "#1d1f21", "#cc6666", "#b5bd68", "#f0c674", "#81a2be", "#b294bb", "#8abeb7", "#c5c8c6",
    "#666666", "#ff7b7b", "#d7e37a", "#ffd787", "#9ec5ff", "#d7afff", "#93e0d8", "#ffffff",
]
FG, BG = "#c5c8c6", "#1d1f21"


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (level, level, level)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = self.bg = None
        self.bold = self.dim = self.reverse = self.underline = False

    def apply(self, params):
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = BASE16[c - 30]
            elif 90 <= c <= 97:
                self.fg = BASE16[c - 90 + 8]
            elif 40 <= c <= 47:
                self.bg = BASE16[c - 40]
            elif 100 <= c <= 107:
                self.bg = BASE16[c - 100 + 8]
            elif c == 39:
                self.fg = None
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = xterm256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    colour = None
                if c == 38:
                    self.fg = colour
                else:
                    self.bg = colour
            i += 1

    def css(self):
        fg, bg = self.fg or FG, self.bg or BG
        if self.reverse:
            fg, bg = bg, fg
        parts = [f"color:{fg}"]
        if bg != BG:
            parts.append(f"background:{bg}")
        if self.bold:
            parts.append("font-weight:bold")
        if self.dim:
            parts.append("opacity:0.6")
        if self.underline:
            parts.append("text-decoration:underline")
        return ";".join(parts)


def cells(text):
    # Fallback fonts draw Braille and block glyphs at other widths, which would shear the
    # layout; pin every non-ASCII glyph to one full-height cell.
    return "".join(
        html.escape(ch) if ord(ch) < 128 else f'<i class="c">{html.escape(ch)}</i>'
        for ch in text
    )


def convert(text):
    style = Style()
    out = []
    for line in text.split("\n"):
        pieces = re.split(r"\x1b\[([0-9;]*)m", line)
        row = []
        for i, piece in enumerate(pieces):
            if i % 2:
                style.apply(piece)
            elif piece:
                row.append(f'<span style="{style.css()}">{cells(piece)}</span>')
        out.append("".join(row))
    return "\n".join(out)


def main():
    title = sys.argv[1] if len(sys.argv) > 1 else "gradlab"
    body = convert(sys.stdin.read().rstrip("\n"))
    print(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ margin:0; background:{BG}; }}
pre {{ margin:0; padding:8px; color:{FG}; background:{BG};
       font-family:'DejaVu Sans Mono','Noto Sans Mono','Liberation Mono',monospace;
       font-size:14px; line-height:17px; }}
i.c {{ font-style:normal; display:inline-block; width:8.43px; height:17px;
       vertical-align:top; overflow:hidden; }}
</style></head><body><pre>{body}</pre></body></html>""")


if __name__ == "__main__":
    main()
