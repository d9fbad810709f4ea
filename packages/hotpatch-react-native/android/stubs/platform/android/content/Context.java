package android.content;

public abstract class Context {
  public abstract java.io.File getFilesDir();

  public abstract android.content.res.AssetManager getAssets();

  public abstract String getPackageName();

  public abstract android.content.pm.PackageManager getPackageManager();

  public abstract Context getApplicationContext();

  public abstract void startActivity(Intent intent);
}
