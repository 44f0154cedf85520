using System.Diagnostics;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace Isthmus.Benchmarks;

public static class Program
{
    /// <summary>
    /// BenchmarkDotNet's switcher, plus <c>--spin CLASS.METHOD SECONDS</c>: runs one benchmark method
    /// in a loop (after its global setup) for a profiler to sample, e.g.
    /// <c>DOTNET_PerfMapEnabled=1 perf record -g dotnet run -c Release -- --spin FirewallPipelineBenchmarks.RoutedConntrackNat 10</c>.
    /// </summary>
    public static void Main(string[] args)
    {
        if (args is ["--spin", var target, var seconds])
        {
            Spin(target, double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture));
            return;
        }

        // Every packet benchmark's table also shows Mpps per core (1000 / mean ns per packet).
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, DefaultConfig.Instance.AddColumn(new MppsColumn()));
    }

    private static void Spin(string target, double seconds)
    {
        var dot = target.LastIndexOf('.');
        var type = typeof(Program).Assembly.GetTypes().Single(t => t.Name == target[..dot]);
        var instance = Activator.CreateInstance(type)!;
        var setup = type.GetMethods().SingleOrDefault(m => m.GetCustomAttributes(typeof(BenchmarkDotNet.Attributes.GlobalSetupAttribute), false).Length > 0);
        setup?.Invoke(instance, null);
        var run = type.GetMethod(target[(dot + 1)..])!.CreateDelegate<Func<int>>(instance);
        var clock = Stopwatch.StartNew();
        long calls = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            for (var i = 0; i < 1000; i++)
            {
                run();
            }

            calls += 1000;
        }

        Console.WriteLine($"{target}: {calls} calls in {clock.Elapsed.TotalSeconds:F1} s = {clock.Elapsed.TotalNanoseconds / calls:F0} ns per call");
    }
}
