# cmake -DIN=<file> -DOUT=<file> -P Sha256.cmake : writes the hex SHA-256 of IN to OUT. The Java loader
# checks the extracted liblatent.so against it, so a truncated or stale cache file is never loaded.
file(SHA256 "${IN}" h)
file(WRITE "${OUT}" "${h}\n")
