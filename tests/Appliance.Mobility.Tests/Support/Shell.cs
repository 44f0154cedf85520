using System.Diagnostics;

namespace Isthmus.Mobility.Tests.Support;

/// <summary>Running the real peers' tools (ip, bird, birdc, vtysh) from the interop tests.</summary>
public static class Shell
{
    /// <summary>Polls <paramref name="condition"/> every 250 ms, <paramref name="attempts"/> times, then fails with <paramref name="explain"/>.</summary>
    public static async Task Eventually(Func<bool> condition, Func<string> explain, int attempts)
    {
        for (var i = 0; i < attempts; i++)
        {
            if (condition())
            {
                return;
            }

            await Task.Delay(250);
        }

        Assert.Fail(explain());
    }

    public static void Must(string file, params string[] arguments)
    {
        var (exit, output) = Run(file, arguments);
        Assert.True(exit == 0, $"{file} {string.Join(' ', arguments)}: {output}");
    }

    public static (int Exit, string Output) Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit(10_000);
        return (process.ExitCode, output.Result + error);
    }
}
