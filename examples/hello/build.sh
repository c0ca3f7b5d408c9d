# Builder of the example's `hello`: a script that prints the message and the banner.
# The builder's PATH is empty, so every tool is called by its absolute path.
echo "nix-plan example: building hello into $out"
/bin/mkdir -p "$out/bin"
{
  echo '#!/bin/sh'
  echo "/bin/cat $message $banner"
} > "$out/bin/hello"
/bin/chmod +x "$out/bin/hello"
echo "hello prints $message and $banner" > "$doc"
