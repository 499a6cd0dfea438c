from jaxal.main import run

run()
