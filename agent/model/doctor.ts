/*
 * `xen-channel doctor`'s judgement: from facts gathered about the guest (is it Xen, is there
 * a xenbus device, the kernel release and log, udev, the agent's published list, each
 * channel's problems) to findings, each with what to do. Layer: pure, tested by a table.
 */

export interface DoctorFacts {
  readonly hypervisor: string | undefined;
  readonly xenbusDevice: boolean;
  readonly kernelRelease: string | undefined;
  /** Lines of the kernel log that mention console probes, when the log was readable. */
  readonly kernelLog: readonly string[] | undefined;
  readonly udevRunning: boolean;
  /** The agent's published list exists. */
  readonly agentPublished: boolean;
  /** Each console as status sees it: name or key, and its problems. */
  readonly channels: ReadonlyArray<{
    readonly label: string;
    readonly problems: readonly string[];
    readonly linked: boolean;
  }>;
}

export interface Finding {
  readonly ok: boolean;
  readonly text: string;
}

/** Kernels whose secondary consoles cannot probe: Linux 5.16 up to the Nov 2023 fix. */
const PROBE_FAILURE = /probe of console-(\d+) failed with error -2/;

export function diagnose(facts: DoctorFacts): Finding[] {
  const findings: Finding[] = [];
  const add = (ok: boolean, text: string): void => {
    findings.push({ ok, text });
  };
  if (facts.hypervisor !== 'xen') {
    add(
      false,
      `this is not a Xen guest (hypervisor: ${facts.hypervisor ?? 'none'}); Xen channels exist only in Xen guests`,
    );
    return findings;
  }
  add(true, 'running under Xen');
  if (facts.xenbusDevice) add(true, 'xenstore is reachable through /dev/xen/xenbus');
  else add(false, 'no /dev/xen/xenbus: load the xen kernel modules (xenfs, xen-evtchn) or mount xenfs on /proc/xen');
  const failed = (facts.kernelLog ?? [])
    .map((line) => PROBE_FAILURE.exec(line)?.[1])
    .filter((d): d is string => d !== undefined);
  if (failed.length > 0) {
    add(
      false,
      `the guest kernel (${facts.kernelRelease ?? 'unknown'}) failed to probe console ${[...new Set(failed)].join(', ')} ` +
        '("probe of console-N failed with error -2"): Linux 5.16 up to the Nov 2023 fix "hvc/xen: fix event channel ' +
        'handling for secondary consoles" cannot use channels; update the guest kernel',
    );
  } else {
    add(
      true,
      `kernel ${facts.kernelRelease ?? 'unknown'}${facts.kernelLog === undefined ? ' (kernel log not readable: run as root to check console probes)' : ': no failed console probes in its log'}`,
    );
  }
  if (facts.udevRunning) add(true, 'udev is running: links come from generated udev rules');
  else add(true, 'udev is not running: xen-channels makes the links itself (as with --no-udev)');
  if (facts.agentPublished) add(true, 'the xen-channels agent has published its channel list');
  else
    add(
      false,
      'the xen-channels agent has not run: systemctl enable --now xen-channels (or run xen-channel udev-event once)',
    );
  if (facts.channels.length === 0)
    add(true, 'no channels are configured for this guest (the host adds them with channel=[...] in xl.cfg)');
  for (const c of facts.channels) {
    if (c.problems.length === 0 && c.linked) add(true, `channel ${c.label} is linked`);
    else if (c.problems.length === 0) add(true, `console ${c.label} has no name (not a channel)`);
    else for (const p of c.problems) add(false, `channel ${c.label}: ${p}`);
  }
  return findings;
}
