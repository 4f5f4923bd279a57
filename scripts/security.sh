#!/usr/bin/env bash
# berth's security suite: runs every attack and crash test, prints what each one tries and
# whether berth held, then the figures the tests measured (exposure, crash healing, how long
# names fail) and the fuzzers' executions and crashes. Run as root; every test uses its own
# instance and network namespaces and removes them, and no traffic leaves them.
#
# Usage: scripts/security.sh            (FUZZ_SECONDS per fuzz target, default 30; 0 skips)
# Exit status 0 only when every attack was held and no fuzzer crashed.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
cargo build --workspace --all-targets -q || exit 1

# kind | package | test binary | test name | what the attack or crash does
tests=(
  "escape|berth-tests|escape_paths|copy_of_several_sources_never_writes_through_a_link_the_first_placed|COPY a b /dst/ where a/x is a link to a host dir and b/x/file follows it"
  "escape|berth-tests|escape_paths|successive_copies_follow_an_earlier_link_inside_the_image|a second COPY writes through a link the first COPY placed"
  "escape|berth-tests|escape_paths|copy_from_a_stage_reads_and_writes_inside_the_roots|COPY --from a stage that holds a link to a host path"
  "escape|berth-tests|escape_paths|add_of_a_tar_writes_through_links_only_inside_the_image|ADD of a tar whose entries go through a link it placed"
  "escape|berth-tests|escape_paths|cp_both_ways_resolves_container_links_in_the_container|container cp in and out through links the container holds"
  "escape|berth-tests|escape_paths|volume_seeding_stays_inside_the_volume_and_the_image|volume seeding from an image with links at and inside the volume path"
  "escape|berth-tests|escape_paths|commit_and_export_keep_links_as_links|commit and export of a container holding links to host paths"
  "escape|berth-tests|escape_paths|mount_targets_resolve_inside_the_rootfs|a mount target that is a link out of the rootfs"
  "escape|berth-tests|container_perms|nobody_reaches_no_container_file_volume_config_or_daemon|a host user (nobody) runs a setuid binary made in a container (upper dir, volume), reads config.json secrets, logs, state, connects to the daemon"
  "escape|berth-tests|container_perms|daemon_start_tightens_a_root_made_by_an_older_berth|a state root left with older, looser modes is tightened at daemon start"
  "escape|berth-tests|inherited_fds|descriptors_of_the_caller_do_not_reach_the_container|the caller of berth holds a host directory open as fd 9; the container and an exec'd process read through /proc/self/fd/9"
  "isolation|berth-tests|fast_path_attacks|a_frame_for_another_network_never_arrives|plain, 802.1Q-tagged and non-IP frames for another network's container, fast path off and on"
  "isolation|berth-tests|fast_path_attacks|a_borrowed_mac_takes_no_frames_of_the_gateway_or_the_victim|a service takes the gateway's MAC or another container's with mac_address"
  "isolation|berth-tests|fast_path_attacks|a_spoofed_source_mac_does_not_keep_the_victims_frames|a container sends frames with a neighbour's source MAC to take its traffic"
  "isolation|berth-tests|fast_path_attacks|icc_off_keeps_containers_apart_with_the_fast_path_on|two containers of an enable_icc=false network try to talk"
  "harden|berth-tests|container_security|seccomp_denies_io_uring_unless_unconfined|a container calls io_uring_setup (blocked by the default seccomp profile, as Docker 25+)"
  "harden|berth-tests|container_security|control_characters_in_name_file_flags_are_refused|a newline in --add-host, --hostname, --dns-search or --dns-option tries to inject a line into /etc/hosts or resolv.conf"
  "exposure|berth-netd|netd_exposure|container_frames_for_127_0_0_1_never_reach_the_hosts_loopback|a container sends UDP and TCP frames for 127.0.0.1 to its gateway's MAC"
  "exposure|berth-netd|netd_exposure|lan_neighbour_reaches_only_ports_published_on_non_loopback_addresses|a LAN neighbour routes to unpublished, loopback-published and internal container ports"
  "exposure|berth-netd|netd_exposure|ipv6_lan_neighbour_reaches_only_published_ports|the same over IPv6"
  "exposure|berth-tests|stack_ports|a_lan_neighbour_reaches_only_ports_published_on_the_hosts_addresses|through the daemon: a neighbour tries an unpublished port of a compose service"
  "crash|berth-tests|crash_heal|daemon_killed_at_random_moments_of_up_heals_at_the_next_up|kill -9 of the daemon at 24 random moments of up -d; the next up -d must heal every container"
  "crash|berth-tests|crash_heal|a_killed_shim_is_noticed_its_container_ended_and_its_restart_policy_applied|kill -9 of a container's shim: the truth is told and restart policies fire"
  "crash|berth-tests|disk_full|a_container_dies_with_its_shim_even_when_nobody_looks|kill -9 of a shim with the daemon down: its container dies with it, nothing runs unsupervised"
  "crash|berth-tests|disk_full|a_start_on_a_full_disk_fails_naming_the_state_file_and_leaves_nothing_running|a start on a full disk: the error names state.json, no process is left"
  "crash|berth-tests|dns_survives|names_answer_through_daemon_kills|kill -9 of the daemon 5 times while a container resolves a peer every 50 ms"
  "crash|berth-tests|dns_survives|names_answer_after_system_shutdown_and_nothing_is_left_after_down|system shutdown with containers running: names keep answering"
  "crash|berth-tests|dns_survives|a_killed_dns_keeper_is_replaced_at_once|kill -9 of the DNS keeper: replaced on the same sockets"
)

logs=$(mktemp -d /tmp/berth-security.XXXXXX)
trap 'rm -rf "$logs"' EXIT
declare -A tried held
failed=0
printf '%-9s %-6s %s\n' KIND RESULT ATTACK
for t in "${tests[@]}"; do
  IFS='|' read -r kind pkg bin name what <<<"$t"
  log="$logs/$bin.$name.log"
  if cargo test -q -p "$pkg" --test "$bin" -- --exact "$name" --nocapture >"$log" 2>&1; then
    res=held
    held[$kind]=$(( ${held[$kind]:-0} + 1 ))
  else
    res=BROKEN
    failed=1
  fi
  tried[$kind]=$(( ${tried[$kind]:-0} + 1 ))
  printf '%-9s %-6s %s (%s)\n' "$kind" "$res" "$what" "$bin::$name"
  [ "$res" = held ] || tail -n 30 "$log" | sed 's/^/    /'
done

echo
echo "Figures the tests measured:"
cat "$logs"/*.log | grep -E '^(FIGURES: |crash_heal: [0-9]+ kill points)' | sed 's/^FIGURES: //; s/^/  /'

echo
echo "Summary:"
for kind in escape isolation harden exposure crash; do
  printf '  %-9s tried %d, held %d\n' "$kind" "${tried[$kind]:-0}" "${held[$kind]:-0}"
done

fuzz=${FUZZ_SECONDS:-30}
if [ "$fuzz" != 0 ] && [ -x scripts/fuzz.sh ]; then
  echo
  echo "Fuzzing ($fuzz s per target):"
  ./scripts/fuzz.sh "$fuzz" || failed=1
fi
exit $failed
