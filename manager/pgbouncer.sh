# sockpin: edit the [databases] section of pgbouncer.ini for one project.
# Run as: sh -c "$SCRIPT" sockpin-pgbouncer OP PROJECT_ID DB_NAME INI_PATH
# OP is add or remove. Every variable part arrives as a positional parameter and is
# only ever expanded inside double quotes; nothing is spliced into this text.
# Prints "changed" or "unchanged" on success; exits non-zero with a message otherwise.
set -u
umask 077

fail() { echo "sockpin-pgbouncer: $*" >&2; exit 1; }

[ "$#" -eq 4 ] || fail "want 4 arguments, got $#"
op=$1 id=$2 db=$3 ini=$4

c='[a-z0-9]'
idpat="proj_$c$c$c$c$c$c$c$c$c$c$c$c$c$c$c$c"
case $id in $idpat) ;; *) fail "invalid project id" ;; esac
case $db in $idpat) ;; *) fail "invalid database name" ;; esac
case $op in add | remove) ;; *) fail "unknown operation" ;; esac
case $ini in /*) ;; *) fail "ini path must be absolute" ;; esac
[ -f "$ini" ] || fail "$ini: not a file"

want="$id = host=postgres port=5432 dbname=$db pool_size=5 reserve_pool=2"
lock="$ini.lock.d"
tmp="$ini.sockpin.$$"
held=0

cleanup() {
	rm -f "$tmp"
	if [ "$held" = 1 ]; then rm -f "$lock/pid"; rmdir "$lock" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# There is no flock in BusyBox builds we must support: a directory is the lock, holding
# the owner's PID. A lock whose owner is gone (killed exec), or that has had no owner for
# 10 s (killed between mkdir and writing the PID), is broken; otherwise wait about 10 s.
tries=0
until mkdir "$lock" 2>/dev/null; do
	owner=$(cat "$lock/pid" 2>/dev/null) || owner=
	if { [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; } ||
		{ [ -z "$owner" ] && [ "$tries" -ge 10 ]; }; then
		rm -f "$lock/pid"
		rmdir "$lock" 2>/dev/null
		tries=0
		continue
	fi
	tries=$((tries + 1))
	[ "$tries" -le 10 ] || fail "$lock: still locked after 10 s"
	sleep 1
done
held=1
echo "$$" >"$lock/pid"

# is_project_line LINE: does LINE define this project's database ("<id> =" or "<id>=")?
is_project_line() {
	rest=${1#"$id"}
	[ "$rest" != "$1" ] || return 1
	rest=${rest#"${rest%%[! 	]*}"}
	case $rest in =*) return 0 ;; esac
	return 1
}

# add has nothing to do when the project's only line is the wanted one, inside
# [databases]: the file is not rewritten and PgBouncer not reloaded.
if [ "$op" = add ]; then
	section= count=0 placed=0
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in "["*) section=$line ;; esac
		is_project_line "$line" || continue
		count=$((count + 1))
		case $section in
		"[databases]" | "[databases]"[[:space:]]*) [ "$line" = "$want" ] && placed=1 ;;
		esac
	done <"$ini" || fail "cannot read $ini"
	if [ "$count" = 1 ] && [ "$placed" = 1 ]; then
		echo unchanged
		exit 0
	fi
fi

changed=0 header=0 after_header=0
while IFS= read -r line || [ -n "$line" ]; do
	if [ "$after_header" = 1 ]; then
		after_header=0
		# The wanted line already sits right after the header: keep the copy printed there.
		[ "$line" = "$want" ] && continue
		changed=1
	fi
	if is_project_line "$line"; then
		changed=1
		continue
	fi
	printf '%s\n' "$line"
	case $line in
	"[databases]" | "[databases]"[[:space:]]*)
		if [ "$header" = 0 ] && [ "$op" = add ]; then
			header=1 after_header=1
			printf '%s\n' "$want"
		fi
		;;
	esac
done <"$ini" >"$tmp" || fail "cannot copy $ini to $tmp"
[ "$after_header" = 0 ] || changed=1
if [ "$op" = add ] && [ "$header" = 0 ]; then
	fail "$ini: no [databases] section"
fi

if [ "$changed" = 1 ]; then
	# The ini is a single-file bind mount: renaming over it fails (EBUSY), so the new
	# content is copied into the same inode instead.
	cat "$tmp" >"$ini" || fail "cannot rewrite $ini"
	echo changed
else
	echo unchanged
fi
