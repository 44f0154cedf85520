using System.Diagnostics;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>Runs iproute2 for test fixtures.</summary>
internal static class Ip
{
    public static readonly string? Path = new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.FirstOrDefault(File.Exists);

    /// <summary>Runs <c>ip args...</c> and throws with its stderr on failure.</summary>
    public static void Run(params string[] args)
    {
        var (code, output) = TryRun(args);
        if (code != 0)
        {
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({code}): {output}");
        }
    }

    /// <summary>
    /// Waits until <paramref name="link"/> in <paramref name="ns"/> is operationally up. Until linkwatch has seen the
    /// carrier, the device keeps the noop qdisc, which drops what AF_PACKET sends while sendmmsg reports success: tests
    /// that transmit at once would lose their first frames. Linkwatch runs from a work queue, late on a loaded
    /// machine: the wait is bounded at 20 s and then throws, so a link that never came up is named as the cause
    /// rather than showing up later as lost frames.
    /// </summary>
    public static void WaitOperUp(string ns, string link)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var output = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            (var code, output) = TryRun("-n", ns, "-o", "link", "show", "dev", link);
            if (code == 0 && output.Contains("state UP", StringComparison.Ordinal))
            {
                return;
            }

            Thread.Sleep(10);
        }

        throw new InvalidOperationException($"{link} in {ns} is not operationally up after 20 s: {output}");
    }

    public static (int ExitCode, string Output) TryRun(params string[] args) =>
        Exec(Path ?? throw new InvalidOperationException("ip not found"), args);

    public static (int ExitCode, string Output) Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr);
    }
}
