using Isthmus.ControlPlane.Store;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>A store file in its own temporary directory, deleted with it.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("isthmus-cp-").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public ConfigStore OpenStore(TimeProvider time, string name = "config.db") => ConfigStore.Open(File(name), time);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
