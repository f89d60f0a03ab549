# Prints the SSH keys a cloud-init NoCloud seed hands the default user, as cloud-init takes
# them: the items of meta-data's "public-keys" and of a #cloud-config user-data's
# "ssh_authorized_keys" (block lists, items plain or quoted). Other user-data (LinuxKit's JSON,
# scripts) has no keys for cloud-init and is passed over. Written in awk: the image has busybox.
FNR == 1 { cloudconfig = ($0 ~ /^#cloud-config[ \t\r]*$/); inlist = 0 }
FILENAME ~ /user-data$/ && !cloudconfig { next }
/^[^ \t#-]/ { inlist = ($0 ~ /^(public-keys|ssh_authorized_keys):[ \t\r]*$/); next }
inlist && /^[ \t]*-[ \t]/ {
  v = $0
  sub(/^[ \t]*-[ \t]+/, "", v); sub(/[ \t\r]+$/, "", v)
  if (v ~ /^'.*'$/) { v = substr(v, 2, length(v) - 2); gsub(/''/, "'", v) }
  else if (v ~ /^".*"$/) { v = substr(v, 2, length(v) - 2) }
  if (v != "") print v
}
