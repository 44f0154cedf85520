using System.Text.Json;
using System.Text.Json.Serialization;
using Isthmus.DataPlane.Programming;

namespace Isthmus.Host.Configuration;

/// <summary>
/// The appliance's configuration file (until the control plane's store replaces it): where the data
/// plane lives, its ports, and its bridge domains.
/// </summary>
public sealed record ApplianceConfig
{
    public DataPlaneSettings DataPlane { get; init; } = new();

    public IReadOnlyList<PortSpec> Ports { get; init; } = [];

    public IReadOnlyList<BridgeDomainSpec> BridgeDomains { get; init; } = [];

    public DataPlaneProgram ToProgram() => new() { Ports = Ports, BridgeDomains = BridgeDomains };

    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Reads and validates a config file; every problem comes back with its path.</summary>
    public static (ApplianceConfig? Config, IReadOnlyList<ProgramError> Errors) Load(string path)
    {
        ApplianceConfig? config;
        try
        {
            using var stream = File.OpenRead(path);
            config = JsonSerializer.Deserialize<ApplianceConfig>(stream, JsonOptions);
        }
        catch (JsonException e)
        {
            return (null, [new ProgramError(e.Path ?? "$", e.Message)]);
        }
        catch (IOException e)
        {
            return (null, [new ProgramError(path, e.Message)]);
        }

        if (config is null)
        {
            return (null, [new ProgramError("$", "the file holds no configuration")]);
        }

        return (config, SnapshotCompiler.Validate(config.ToProgram()));
    }
}

public sealed record DataPlaneSettings
{
    /// <summary>Network namespace holding the data-plane interfaces (the lab's "ist-app"); null = this one.</summary>
    public string? Netns { get; init; }

    /// <summary>Packet buffers in the worker's pool.</summary>
    public int PoolSize { get; init; } = 16384;

    /// <summary>Frames per receive system call.</summary>
    public int RxBatch { get; init; } = 64;
}
