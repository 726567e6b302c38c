# Generated from alert_pipeline/steps.py (python -m alert_pipeline.steps --shell): do not edit.
# shellcheck shell=bash disable=SC2034,SC2154  # the wrapper's variables
readonly STEP_SWITCHES=(CROSSMATCH PAGES REPORT)
readonly STEPS_HELP='Steps, in this order (each logged: starting, then finished, failed with its exit code, or
skipped with the reason; a failed step never stops the later ones):
   1 consumer           the LSST alert consumer: Kafka -> day CSV + FITS cutouts
                        runs: always
   2 messengers-files   load the dropped messenger files (sky maps, IceCube and cosmic-ray lists,
                        GCN notices, IGWN alerts): the regular files directly in MESSENGER_FILES and
                        the links to regular files, no dot files
                        runs: MESSENGER_FILES is set (not a directory, or holding no file: exit 9)
   3 messengers-gcn     load new GW, neutrino, gamma-ray-burst and cosmic-ray notices from GCN Kafka
                        runs: GCN_CLIENT_ID, GCN_CLIENT_ID_FILE or GCN_KAFKA_BOOTSTRAP_SERVERS is
                              set
   4 transient-builder  the kind builder: transient and minor_body slots from the Fink table; a full
                        build on FULL_BUILD_WEEKDAY, else only what the new rows touch
                        runs: DATABASE_URL is set
   5 tns                Transient Name Server classes into the transient slots (a file, or the files
                        of a directory not applied yet)
                        runs: TNS_FILE is set
   6 crossmatch         match the transients with the gw, neutrino, grb and uhecr events
                        runs: the storehouse has transient slots (an index); CROSSMATCH=0 skips it
   7 hosts              GW host candidates in each 90% credible volume and each transient'"'"'s host
                        galaxy, from the galaxy catalogue (load-galaxies)
                        runs: the storehouse has a galaxy catalogue (catalogues/)
   8 pages              the storehouse'"'"'s static site: a page per slot (light curves, sky maps,
                        candidates) and an index; only what changed is rewritten
                        runs: the storehouse exists; PAGES=0 skips it
   9 retention          delete the CSV, Parquet, FITS, quarantine and report files older than
                        RETENTION_DAYS
                        runs: always
  10 report             the nightly HTML report (lsst_alert_report.py); it links the storehouse'"'"'s
                        site when that exists
                        runs: always; REPORT=0 skips it
  Switches CROSSMATCH, PAGES, REPORT: 1 (default) runs the step, 0 skips it; any other value is
  refused before a step runs (exit 64).'
# Every step in its order: skipped (switch 0, or its condition false), refused (its input
# unusable) or run.
run_steps() {
  # 1. consumer
  run_step consumer "$PYTHON" lsst_alert_consumer.py
  # 2. messengers-files
  list_messenger_files
  if [[ -n "${MESSENGER_FILES:-}" && ! -d "$MESSENGER_FILES" ]]; then
    fail_step messengers-files "$EXIT_INPUT_UNUSED" "MESSENGER_FILES '$MESSENGER_FILES' is not a directory; nothing of it was loaded"
  elif [[ -n "${MESSENGER_FILES:-}" && ${#messenger_files[@]} -eq 0 ]]; then
    fail_step messengers-files "$EXIT_INPUT_UNUSED" "MESSENGER_FILES '$MESSENGER_FILES' holds no file (a regular file or a link to one, not a dot file); nothing was loaded"
  elif [[ ${#messenger_files[@]} -gt 0 ]]; then
    run_step messengers-files "$PYTHON" transient_kind_builder.py load-messengers --storehouse "$storehouse" "${messenger_files[@]}"
  else
    log "step messengers-files: skipped (MESSENGER_FILES is not set)"
  fi
  # 3. messengers-gcn
  if [[ -n "${GCN_CLIENT_ID:-}${GCN_CLIENT_ID_FILE:-}${GCN_KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    run_step messengers-gcn "$PYTHON" transient_kind_builder.py load-messengers --storehouse "$storehouse" --gcn
  else
    log "step messengers-gcn: skipped (none of GCN_CLIENT_ID, GCN_CLIENT_ID_FILE, GCN_KAFKA_BOOTSTRAP_SERVERS is set)"
  fi
  # 4. transient-builder
  set_build_args
  if [[ -n "${DATABASE_URL:-}" ]]; then
    run_step transient-builder "$PYTHON" transient_kind_builder.py build "${build_args[@]}" --storehouse "$storehouse"
  else
    log "step transient-builder: skipped (DATABASE_URL is not set)"
  fi
  # 5. tns
  if [[ -n "${TNS_FILE:-}" ]]; then
    run_step tns "$PYTHON" transient_kind_builder.py tns --storehouse "$storehouse" "$TNS_FILE"
  else
    log "step tns: skipped (TNS_FILE is not set)"
  fi
  # 6. crossmatch
  if [[ "${CROSSMATCH:-1}" == 0 ]]; then
    log "step crossmatch: skipped (CROSSMATCH=0)"
  elif [[ -f "$("$PYTHON" transient_kind_builder.py paths --storehouse "$storehouse" transient-index)" ]]; then
    run_step crossmatch "$PYTHON" transient_kind_builder.py crossmatch --storehouse "$storehouse"
  else
    log "step crossmatch: skipped (no transient slots in $storehouse)"
  fi
  # 7. hosts
  if [[ -d "$("$PYTHON" transient_kind_builder.py paths --storehouse "$storehouse" catalogues)" ]]; then
    run_step hosts "$PYTHON" transient_kind_builder.py hosts --storehouse "$storehouse"
  else
    log "step hosts: skipped (no galaxy catalogue in $storehouse)"
  fi
  # 8. pages
  if [[ "${PAGES:-1}" == 0 ]]; then
    log "step pages: skipped (PAGES=0)"
  elif [[ -d "$storehouse" ]]; then
    run_step pages "$PYTHON" transient_kind_builder.py pages --storehouse "$storehouse"
  else
    log "step pages: skipped (no storehouse at $storehouse)"
  fi
  # 9. retention
  run_step retention retention
  # 10. report
  if [[ "${REPORT:-1}" == 0 ]]; then
    log "step report: skipped (REPORT=0)"
  else
    run_step report "$PYTHON" lsst_alert_report.py --output-dir "$output_dir" --site "$("$PYTHON" transient_kind_builder.py paths --storehouse "$storehouse" site)"
  fi
}
