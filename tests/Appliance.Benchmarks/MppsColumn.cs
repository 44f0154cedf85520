using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Isthmus.Benchmarks;

/// <summary>
/// Mpps per core from the mean: every packet benchmark runs one batch per operation with
/// OperationsPerInvoke = batch size, so BenchmarkDotNet's mean is already ns per packet and
/// 1000 / mean is millions of packets per second on the one core that ran it. Shown for the packet
/// benchmarks only (their descriptions end in "per packet").
/// </summary>
public sealed class MppsColumn : IColumn
{
    public string Id => nameof(MppsColumn);

    public string ColumnName => "Mpps/core";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Million packets per second per core (1000 / mean ns per packet)";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        var mean = report?.ResultStatistics?.Mean;
        if (mean is not > 0 || !benchmarkCase.Descriptor.WorkloadMethodDisplayInfo.TrimEnd('\'').EndsWith("per packet", StringComparison.Ordinal))
        {
            return "-";
        }

        return (1000.0 / mean.Value).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
